"""`layered eval`: output formats, folders of folders, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import random_stack

from layered.cli import main
from layered.stack import Layer, LayerStack

HEAVY = ("torch", "diffusers", "transformers", "gradio", "accelerate")


def _square(color, box, size=(8, 6)) -> np.ndarray:
    out = np.zeros((size[1], size[0], 4), np.uint8)
    left, top, right, bottom = box
    out[top:bottom, left:right] = color
    return out


@pytest.fixture
def folders(tmp_path):
    """gt: a red 4 x 4 square; `same`: identical; `split`: the square cut into a 2 x 4 and a 2 x 4 layer."""
    red = (255, 0, 0, 255)
    LayerStack.from_images([_square(red, (1, 1, 5, 5))]).save(tmp_path / "gt")
    LayerStack.from_images([_square(red, (1, 1, 5, 5))]).save(tmp_path / "same")
    LayerStack.from_images([_square(red, (1, 1, 3, 5)), _square(red, (3, 1, 5, 5))]).save(tmp_path / "split")
    return tmp_path


def _eval(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_identical_folders_json(folders, capsys):
    code, out, _ = _eval(capsys, folders / "same", folders / "gt", "--json")
    assert code == 0
    assert json.loads(out) == [{"merge": k, "rgb_l1": 0.0, "soft_iou": 1.0} for k in range(6)]


def test_split_layer_plain_table(folders, capsys):
    code, out, _ = _eval(capsys, folders / "split", folders / "gt", "--max-merge", "2")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["merge", "rgb_l1", "soft_iou"]
    # k = 0: both halves match the square: IoU 8/16 each; L1 over the square's 16 pixels: 8 are red on red,
    # 8 are transparent (black) against red, 1/3 each -> 8/3 / 16 = 1/6. k = 1: merged, perfect.
    assert [line.split() for line in lines[1:]] == [
        ["0", "0.1667", "0.5000"],
        ["1", "0.0000", "1.0000"],
        ["2", "0.0000", "1.0000"],
    ]


def test_folders_of_folders_mean_and_samples(folders, capsys):
    for side, sample in (("P", "same"), ("G", "gt")):
        (folders / side).mkdir()
        (folders / sample).rename(folders / side / "a")
    (folders / "split").rename(folders / "P" / "b")
    LayerStack.load(folders / "G" / "a").save(folders / "G" / "b")
    code, out, _ = _eval(capsys, folders / "P", folders / "G", "--json", "--max-merge", "1")
    assert code == 0
    doc = json.loads(out)
    assert doc["samples"]["a"] == [
        {"merge": 0, "rgb_l1": 0.0, "soft_iou": 1.0},
        {"merge": 1, "rgb_l1": 0.0, "soft_iou": 1.0},
    ]
    # sample b as in test_split_layer_plain_table; the mean halves its k = 0 row with sample a's
    assert doc["samples"]["b"] == [
        {"merge": 0, "rgb_l1": pytest.approx(1 / 6), "soft_iou": 0.5},
        {"merge": 1, "rgb_l1": 0.0, "soft_iou": 1.0},
    ]
    assert doc["mean"] == [
        {"merge": 0, "rgb_l1": pytest.approx(1 / 12), "soft_iou": 0.75},
        {"merge": 1, "rgb_l1": 0.0, "soft_iou": 1.0},
    ]
    code, out, _ = _eval(capsys, folders / "P", folders / "G")
    assert code == 0 and out.split("\n\n")[-1].splitlines()[0] == "mean" and "0.7500" in out
    # a sample on one side only is named and is an error
    LayerStack.load(folders / "G" / "a").save(folders / "G" / "c")
    code, out, err = _eval(capsys, folders / "P", folders / "G")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and f"only in {folders / 'G'}: c)" in err


def test_real_psd_against_layer_folders(shared_dir, tmp_path, capsys):
    from layered import edits
    from layered.formats import read_stack

    psd = shared_dir / "psd-corpus" / "stroke.psd"  # six stroked Photoshop shapes (layer_comps.psd opens as one)
    stack = read_stack(psd)
    stack.save(tmp_path / "same")
    edits.merge_down(stack, 1).save(tmp_path / "merged")  # the rectangle merged into the background
    code, out, _ = _eval(capsys, tmp_path / "same", psd, "--json")
    assert code == 0 and all(r["rgb_l1"] == 0.0 and r["soft_iou"] == 1.0 for r in json.loads(out))
    code, out, _ = _eval(capsys, tmp_path / "merged", psd, "--json", "--max-merge", "2")
    rows = json.loads(out)
    assert code == 0 and rows[0]["soft_iou"] < 0.95 and rows[0]["rgb_l1"] > 0.01
    # one merge on the ground-truth side recovers it, up to the uint8 rounding of the merged layer
    assert all(r["rgb_l1"] < 1e-3 and r["soft_iou"] > 0.999 for r in rows[1:])


def _bad_inputs(tmp_path):
    good = tmp_path / "good"
    random_stack(np.random.default_rng(0), canvas=(12, 10), count=2).save(good)
    random_stack(np.random.default_rng(1), canvas=(13, 10), count=2).save(tmp_path / "wide")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not layers")
    (tmp_path / "nested" / "x").mkdir(parents=True)  # a folder of folders whose sample is no layer folder
    (tmp_path / "nested2" / "x").mkdir(parents=True)
    return [
        ([tmp_path / "missing", good], "no such file"),
        ([good, tmp_path / "plain"], "not a layer folder"),
        ([good, tmp_path / "wide"], "canvas sizes differ"),
        ([good, tmp_path / "nested"], "folder of layer folders"),
        ([tmp_path / "nested", tmp_path / "nested2"], "layers.json"),
        ([good, good, "--max-merge", "-1"], "--max-merge"),
    ]


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    for argv, message in _bad_inputs(tmp_path):
        code, out, err = _eval(capsys, *argv)
        assert code == 2, argv
        assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("layered eval: error:") and message in err, err


def test_bad_input_from_the_shell_and_light_imports(tmp_path):
    random_stack(np.random.default_rng(0), canvas=(12, 10), count=2).save(tmp_path / "good")
    result = subprocess.run(
        [sys.executable, "-m", "layered", "eval", str(tmp_path / "good"), str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    probe = (
        "from layered.cli import main\n"
        f"assert main(['eval', {str(tmp_path / 'good')!r}, {str(tmp_path / 'good')!r}, '--json']) == 0\n"
        "import sys\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_a_stack_over_the_layer_limit_is_one_line_and_status_2(tmp_path, capsys):
    """Issue 18, defect 5: eval is bounded; 1,000 layers used to take 38 s and 10,000 never finished."""
    from layered.metrics import MAX_EVAL_LAYERS

    rng = np.random.default_rng(0)
    dot = rng.integers(0, 256, (1, 1, 4), dtype=np.uint8)
    count = MAX_EVAL_LAYERS + 1
    many = LayerStack(16, 16, tuple(Layer(dot, i % 16, i // 16 % 16, f"d{i}") for i in range(count)))
    many.save(tmp_path / "many")
    hidden = many.replace(layers=tuple(layer.replace(visible=i > 0) for i, layer in enumerate(many.layers)))
    hidden.save(tmp_path / "hidden")  # one of them hidden: at the limit, scored
    few = LayerStack.from_images([np.full((16, 16, 4), 255, np.uint8)])
    few.save(tmp_path / "few")
    for pred, gt in (("many", "few"), ("few", "many")):
        code, out, err = _eval(capsys, tmp_path / pred, tmp_path / gt)
        assert code == 2 and out == "", err
        assert len(err.strip().splitlines()) == 1 and f"{count} visible layers" in err and str(MAX_EVAL_LAYERS) in err
    code, out, err = _eval(capsys, tmp_path / "hidden", tmp_path / "few", "--max-merge", "1", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["merge"] for r in rows] == [0, 1]
