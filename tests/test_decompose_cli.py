"""`layered decompose`: inputs of every kind, bad inputs in a batch, model and classic methods, exports, accelerate."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipeline import make_tiny_pipeline

from layered import models
from layered.cli import main
from layered.formats import read_stack
from layered.stack import LayerStack

ROOT = Path(__file__).resolve().parents[1]
try:
    import layered.classic  # noqa: F401

    HAS_CLASSIC = True
except ImportError:
    HAS_CLASSIC = False
needs_classic = pytest.mark.skipif(not HAS_CLASSIC, reason="layered.classic has not landed")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (no pixel data): refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good images of every supported kind (with the canvas size each must give) and bad files."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    rgb[:12, :20] = (250, 10, 10)
    base = Image.fromarray(rgb)
    good = {}
    base.save(d / "plain.png")
    good["plain"] = (40, 24)
    base.save(d / "photo.jpg", quality=95)
    good["photo"] = (40, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the canvas must come out 24 x 40
    base.save(d / "rotated.jpg", exif=exif)
    good["rotated"] = (24, 40)
    base.save(d / "web.webp")
    base.save(d / "bitmap.bmp")
    base.convert("CMYK").save(d / "cmyk.tiff")
    base.convert("P").save(d / "anim.gif", save_all=True, append_images=[base.convert("P").rotate(90)])
    base.convert("LA").save(d / "greyalpha.png")
    Image.fromarray((rng.integers(0, 65536, (24, 40))).astype(np.uint16)).save(d / "sixteen.png")
    for name in ("web", "bitmap", "cmyk", "anim", "greyalpha", "sixteen"):
        good[name] = (40, 24)
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    (bad / "truncated.png").write_bytes((d / "plain.png").read_bytes()[:80])
    _png_header_only(bad / "huge.png", 9000, 9000)  # 81 M pixels: under PIL's bomb check, over our 67 M limit
    return d, good, sorted(bad.iterdir())


def _layer_folder_ok(folder: Path, size: tuple[int, int]) -> LayerStack:
    stack = LayerStack.load(folder)
    assert stack.size == size
    composite = np.asarray(Image.open(folder / "composite.png").convert("RGBA"))
    np.testing.assert_array_equal(composite, stack.composite())
    doc = json.loads((folder / "layers.json").read_text())
    assert [e["file"] for e in doc["layers"]] == sorted(e["file"] for e in doc["layers"])  # bottom-first order
    return stack


def test_help_and_classic_do_not_import_torch(tmp_path, inputs):
    folder, _, _ = inputs
    code = (
        "import sys\nfrom layered.cli import main\n"
        "try:\n    main(['decompose', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'help imported torch'\n"
        + (
            f"rc = main(['decompose', {str(folder / 'plain.png')!r}, '-o', {str(tmp_path)!r}, '--method', 'classic'])\n"
            "assert rc == 0, rc\nassert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
            if HAS_CLASSIC
            else ""
        )
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "split images into RGBA layers" in result.stdout


@needs_classic
def test_batch_of_every_kind_with_failures(tmp_path, inputs, capsys):
    folder, good, bad = inputs
    out = tmp_path / "out"
    rc = main(["decompose", str(folder), *map(str, bad), str(tmp_path / "missing.png"), "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == len(bad) + 1, captured.err
    assert all(line.startswith("layered decompose: error: ") for line in errors)
    assert "Traceback" not in captured.err
    assert any("9000x9000" in line for line in errors)
    for name, size in good.items():
        _layer_folder_ok(out / name, size)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(good)
    assert not [p for p in out.rglob("*.tmp")]


def test_model_method_matches_the_api(tmp_path, inputs, monkeypatch, capsys):
    folder, _, _ = inputs
    model_dir = tmp_path / "model"
    make_tiny_pipeline(seed=11).save_pretrained(model_dir)
    out = tmp_path / "out"
    args = ["--steps", "2", "--layers", "2", "--seed", "3", "--prompt", "p"]
    rc = main(["decompose", str(folder / "plain.png"), "-o", str(out), "--model", str(model_dir), *args])
    assert rc == 0, capsys.readouterr().err
    stack = _layer_folder_ok(out / "plain", (40, 24))
    pipe = make_tiny_pipeline(seed=11)
    image = Image.open(folder / "plain.png")
    expected = pipe(
        image, prompt="p", layers=2, num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="np"
    ).stacks[0]
    assert len(stack) == len(expected) == 2
    for a, b in zip(stack.layers, expected.layers, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        assert a.bbox == b.bbox

    # --method model with the demo model missing: one line, exit 2
    monkeypatch.setattr(models, "DEMO_DIR", tmp_path / "no-demo")
    capsys.readouterr()
    rc = main(["decompose", str(folder / "plain.png"), "-o", str(out), "--method", "model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--method classic" in err[0]


@needs_classic
def test_exports_and_recursive(tmp_path, inputs, capsys):
    folder, _, _ = inputs
    out = tmp_path / "out"
    rc = main(["decompose", str(folder / "plain.png"), "-o", str(out), "--layers", "3", "--export", "psd,ora,zip"])
    assert rc == 0, capsys.readouterr().err
    stack = _layer_folder_ok(out / "plain", (40, 24))
    for kind in ("psd", "ora"):
        again = read_stack(out / f"plain.{kind}")
        assert len(again) == len(stack)
        assert np.abs(again.composite().astype(int) - stack.composite().astype(int)).max() <= 1
    assert (out / "plain.zip").stat().st_size > 0
    # split layer 1 of the written folder: the others stay as they were, in order
    rc = main(["decompose", str(out / "plain"), "-o", str(tmp_path / "again"), "--recursive", "1", "--layers", "2"])
    assert rc == 0, capsys.readouterr().err
    split = LayerStack.load(tmp_path / "again" / "plain")
    new = len(split) - (len(stack) - 1)
    assert new >= 1
    before, after = [stack[0]], list(stack.layers[2:])
    for a, b in zip([split[0], *split.layers[1 + new :]], before + after, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        assert a.bbox == b.bbox
    rc = main(["decompose", str(folder / "plain.png"), "-o", str(out), "--export", "bogus"])
    assert rc == 2 and "bogus" in capsys.readouterr().err


@needs_classic
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate_splits_inputs_across_two_processes(tmp_path, inputs):
    folder, good, _ = inputs
    names = ["plain", "photo", "web", "bitmap"]
    files = [str(next(folder.glob(f"{n}.*"))) for n in names]
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    # `--cpu` alone starts one process in accelerate 1.x; --multi_gpu starts torchrun, and on a CPU-only
    # machine the command's PartialState(cpu=True) joins the processes over gloo
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no"]
    command += ["--dynamo_backend", "no", "-m", "layered", "decompose", *files, "-o", str(out), "--method", "classic"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    # the two processes share one stdout pipe, so their lines may interleave: find the reports, not lines
    reports = re.findall(r"wrote (\d+) of (\d+) layer folders", result.stdout)
    assert reports == [("2", "2"), ("2", "2")]  # each process took half
    for name in names:
        _layer_folder_ok(out / name, good[name])


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@needs_classic
def test_a_decompression_bomb_and_a_newline_in_a_name_give_one_line_each(tmp_path):
    """Pillow's DecompressionBombWarning must not come before our size check; names must not split lines.
    A subprocess, as a user runs it: pytest would capture the warning."""
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 9500, 9500)  # 90 M pixels: over Pillow's warning threshold and over our limit
    odd = tmp_path / "bad\nname.png"
    odd.write_text("not an image")
    for path, expected in ((bomb, "9500x9500"), (odd, "bad\\nname.png")):
        command = [sys.executable, "-m", "layered", "decompose", str(path), "-o", str(tmp_path / "out")]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        err = _errors(result.stderr)
        assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "out").exists()  # nothing left behind, not even the folder


@needs_classic
@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_an_output_that_cannot_be_a_folder_is_one_error_before_any_work(tmp_path, inputs, capsys, where):
    folder, good, _ = inputs
    blocker = tmp_path / "taken"
    blocker.write_bytes(b"the user's file")
    out = blocker if where == "a file" else blocker / "sub"
    assert main(["decompose", str(folder), "-o", str(out)]) == 2  # a folder of several images
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("layered decompose: error:") and str(out) in err[0], err
    assert "internal error" not in err[0]
    assert blocker.read_bytes() == b"the user's file" and sorted(tmp_path.iterdir()) == [blocker]


@needs_classic
def test_a_folder_without_images_is_a_failed_input(tmp_path, inputs, capsys):
    folder, _, _ = inputs
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    assert main(["decompose", str(folder / "plain.png"), str(empty), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    err = _errors(captured.err)
    assert len(err) == 1 and str(empty) in err[0] and "no images" in err[0], err
    assert "wrote 1 of 2" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["plain"]


def test_refinement_is_the_default_and_recorded(tmp_path, inputs, capsys):
    """Every method refines by default (composite == input within 1/255, recorded); --no-refine records false."""
    folder, _, _ = inputs
    image = np.asarray(Image.open(folder / "plain.png").convert("RGBA")).astype(int)
    model_dir = tmp_path / "model"
    make_tiny_pipeline(seed=11).save_pretrained(model_dir)
    model = ["--model", str(model_dir), "--steps", "2", "--layers", "2", "--prompt", "p"]
    for name, args in (("classic", ["--method", "classic"]), ("model", model)):
        for refine in (True, False):
            out = tmp_path / f"{name}-{refine}"
            rc = main(
                ["decompose", str(folder / "plain.png"), "-o", str(out), *args, *([] if refine else ["--no-refine"])]
            )
            assert rc == 0, capsys.readouterr().err
            doc = json.loads((out / "plain" / "layers.json").read_text())
            assert doc["refined"] is refine, name
            stack = _layer_folder_ok(out / "plain", (40, 24))
            if refine:
                assert np.abs(stack.composite().astype(int) - image).max() <= 1, name
        if name == "model":  # the tiny model works at 48 x 80 (its own resolution), not the input's 40 x 24
            assert doc["working_size"] == [80, 48]
