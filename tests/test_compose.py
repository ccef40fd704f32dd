"""`layered compose` run as a user runs it (a subprocess): right pixels, and clean failures on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_stack
from PIL import Image

from layered.formats import write_stack

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LAYERED_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "layered", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.fixture(scope="module")
def stack():
    """Random layers with opacities in 1/255 steps, which every format (PSD included) keeps exactly."""
    stack = random_stack(np.random.default_rng(42), canvas=(50, 40), count=4)
    layers = [layer.replace(opacity=k / 255) for layer, k in zip(stack.layers, (255, 128, 64, 200), strict=True)]
    layers[1] = layers[1].replace(visible=False)
    return stack.replace(layers=tuple(layers))


@pytest.mark.parametrize("kind", ["folder", "psd", "ora", "zip"])
def test_compose_equals_the_stack_composite(tmp_path, stack, kind):
    source = stack.save(tmp_path / "layers") if kind == "folder" else write_stack(stack, tmp_path / f"in.{kind}")
    out = tmp_path / "out" / "flat.png"
    result = run_cli("compose", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_png(out), stack.composite())


def test_compose_a_real_photoshop_file(tmp_path, shared_dir):
    source = shared_dir / "psd-corpus" / "2layers.psd"
    out = tmp_path / "flat.png"
    assert run_cli("compose", str(source), "-o", str(out)).returncode == 0
    from psd_tools import PSDImage

    stored = np.asarray(PSDImage.open(source).topil().convert("RGBA")).astype(float)
    mse = np.mean((read_png(out).astype(float) - stored) ** 2)  # an opaque document: plain PSNR
    assert 10 * np.log10(255**2 / mse) >= 45


def _bad_source(tmp_path: Path, case: str, stack) -> Path:
    if case == "missing path":
        return tmp_path / "nowhere"
    if case == "folder without layers.json":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    folder = stack.save(tmp_path / "layers")
    spec = json.loads((folder / "layers.json").read_text())
    if case == "layers.json pointing outside":
        Image.new("RGBA", (2, 2)).save(tmp_path / "x.png")
        spec["layers"][0]["file"] = "../x.png"
        (folder / "layers.json").write_text(json.dumps(spec))
        return folder
    if case == "truncated png":
        png = folder / spec["layers"][2]["file"]
        png.write_bytes(png.read_bytes()[:60])
        return folder
    if case == "psd that is not a psd":
        fake = tmp_path / "photo.psd"
        fake.write_bytes((folder / "composite.png").read_bytes())
        return fake
    if case == "ora that is not a zip":
        fake = tmp_path / "drawing.ora"
        fake.write_text("hello")
        return fake
    if case == "unknown suffix":
        odd = tmp_path / "drawing.kra"
        odd.write_bytes(b"PK\x03\x04")
        return odd
    raise AssertionError(case)


BAD = [
    "missing path",
    "folder without layers.json",
    "layers.json pointing outside",
    "truncated png",
    "psd that is not a psd",
    "ora that is not a zip",
    "unknown suffix",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_one_line_exit_2_no_output(tmp_path, stack, case):
    source = _bad_source(tmp_path, case, stack)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("compose", str(source), "-o", str(out_dir / "flat.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layered compose: error:")
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


def test_compose_does_not_import_heavy_packages(tmp_path, stack):
    source = write_stack(stack, tmp_path / "in.psd")
    code = (
        "import sys; from layered.cli import main; "
        f"assert main(['compose', {str(source)!r}, '-o', {str(tmp_path / 'o.png')!r}]) == 0; "
        "heavy = [m for m in ('torch', 'diffusers', 'gradio', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def _edit_layers_json(folder: Path, case: str) -> None:
    """Break a saved layer folder's layers.json the way the fuzzing did (issue 18, defects 3 and 4)."""
    spec = folder / "layers.json"
    doc = json.loads(spec.read_text())
    if case == "nested 100000 deep":
        spec.write_text("[" * 100_000 + "]" * 100_000)
        return
    if case == "opacity NaN":
        doc["layers"][0]["opacity"] = float("nan")  # json writes NaN, which json.loads reads back
    elif case == "opacity 1.5":
        doc["layers"][0]["opacity"] = 1.5
    elif case == "width 1e18":
        doc["width"] = 10**18
    elif case == "canvas 100000 square":
        doc["width"] = doc["height"] = 100_000
    elif case == "canvas 16384 square":  # over the decoded-image limit: Pillow would not reopen the PNG
        doc["width"] = doc["height"] = 16_384
    text = json.dumps(doc)
    if case == "width 1e400":
        text = text.replace('"width": 50', '"width": 1e400', 1)
    elif case == "offset 1e400":
        text = text.replace('"x": ', '"x": 1e400, "_x": ', 1)
    spec.write_text(text)


BAD_LAYERS_JSON = [
    "width 1e400",
    "offset 1e400",
    "nested 100000 deep",
    "canvas 100000 square",
    "width 1e18",
    "canvas 16384 square",
    "opacity NaN",
    "opacity 1.5",
]


@pytest.mark.parametrize("case", BAD_LAYERS_JSON)
def test_bad_numbers_in_layers_json_one_line_exit_2(tmp_path, stack, case):
    folder = stack.save(tmp_path / "layers")
    _edit_layers_json(folder, case)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("compose", str(folder), "-o", str(out_dir / "flat.png"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layered compose: error:"), result.stderr
    assert list(out_dir.iterdir()) == []


def test_compose_replaces_its_own_png_and_nothing_else(tmp_path, stack):
    """Issue 18, defect 1, for compose: a user's PNG at -o is refused (one line naming --overwrite) and kept."""
    source = write_stack(stack, tmp_path / "in.ora")
    out = tmp_path / "flat.png"
    out.write_bytes(b"the user's own picture")
    refused = run_cli("compose", str(source), "-o", str(out))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--overwrite" in refused.stderr and out.read_bytes() == b"the user's own picture"
    assert run_cli("compose", str(source), "-o", str(out), "--overwrite").returncode == 0
    again = run_cli("compose", str(source), "-o", str(out))  # a PNG of ours: replaced without asking
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(read_png(out), stack.composite())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.png", "in.ora"]
