"""Synthetic designs: deterministic per seed, real PSD files that psd-tools reads back layer for layer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from helpers import pil_composite
from PIL import Image

from psd_pipeline.synth import design_to_psd, make_design, write_designs


def test_same_seed_same_design_other_seed_other_design():
    a, b, c = make_design(3, 1, style="flat"), make_design(3, 1, style="flat"), make_design(4, 1, style="flat")
    np.testing.assert_array_equal(a.composite(), b.composite())
    assert not np.array_equal(a.composite(), c.composite())


def test_designs_have_the_promised_structure():
    kinds = set()
    for k in range(1, 41):
        stack = make_design(11, k, 64, style="flat")
        assert 2 <= len(stack) <= 6
        assert stack.size == (64, 64)
        assert stack[0].name == "Background" and (stack[0].pixels[..., 3] == 255).all()
        for layer in stack.layers[1:]:
            kinds.add(layer.name.rsplit(" ", 1)[0] if layer.name[-1].isdigit() else "text")
        # some foreground layers are semi-transparent inside (alpha strictly between 0 and 255 over area)
    assert {"Rectangle", "Ellipse", "text"} <= kinds
    alphas = np.concatenate(
        [layer.pixels[..., 3].ravel() for k in range(1, 20) for layer in make_design(5, k, 64, style="flat")[1:]]
    )
    assert ((alphas > 0) & (alphas < 255)).mean() > 0.05


def test_psd_round_trip_through_psd_tools(tmp_path):
    from psd_tools import PSDImage

    stack = make_design(2, 5, 96, style="flat")
    path = design_to_psd(stack, tmp_path / "d.psd")
    psd = PSDImage.open(path)
    assert psd.size == (96, 96)
    assert [layer.name for layer in psd] == [layer.name for layer in stack]
    for layer, ours in zip(psd, stack.layers, strict=True):
        assert layer.kind == "pixel"
        assert (layer.left, layer.top) == (ours.x, ours.y)
        np.testing.assert_array_equal(np.asarray(layer.topil().convert("RGBA")), ours.pixels)
    # the stored composite is Photoshop-style (flattened, RGB): compare with PIL's alpha_composite chain
    stored = np.asarray(psd.topil().convert("RGB")).astype(int)
    assert np.abs(stored - pil_composite(stack)[..., :3]).max() <= 1


def test_write_designs_is_independent_of_workers(tmp_path):
    one = write_designs(tmp_path / "one", 4, seed=9, size=48, workers=1, png=True, style="flat")
    two = write_designs(tmp_path / "two", 4, seed=9, size=48, workers=2, style="flat")
    assert [p.name for p in one] == [f"design_{k}.psd" for k in range(1, 5)]
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "one" / "design_4.png").is_file()


def test_cli_synth(tmp_path):
    out = tmp_path / "s"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "layered",
            "psd",
            "synth",
            "-o",
            str(out),
            "--count",
            "2",
            "--seed",
            "1",
            "--size",
            "32",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["design_1.psd", "design_2.psd"]
    bad = subprocess.run(
        [sys.executable, "-m", "layered", "psd", "synth", "-o", str(out), "--count", "1", "--size", "3"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--size" in bad.stderr


def test_synth_replaces_its_own_files_but_not_a_users(tmp_path):
    out = tmp_path / "s"
    args = ["-o", str(out), "--count", "2", "--seed", "1", "--size", "32", "--style", "flat", "--png"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "layered", "psd", "synth", *args, *extra]
        return subprocess.run(command, capture_output=True, text=True)

    assert run().returncode == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["design_1.png", "design_1.psd", "design_2.png", "design_2.psd"]
    again = run()  # an earlier run's files are ours: replaced, with the same bytes (same seed)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    (out / "design_2.psd").write_bytes(b"the user's own file")
    (out / "design_1.psd").unlink()
    refused = run()
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--overwrite" in refused.stderr
    assert (out / "design_2.psd").read_bytes() == b"the user's own file"
    assert not (out / "design_1.psd").exists()  # checked before the first design is written: nothing written
    assert run("--overwrite").returncode == 0
    assert (out / "design_2.psd").read_bytes() == first["design_2.psd"]


def test_committed_examples_are_what_the_generator_makes():
    """examples/ was written by `layered psd synth -o examples --count 3 --seed 8 --size 256 --png --style flat`."""
    from pathlib import Path

    from layered.stack import LayerStack

    examples = Path(__file__).resolve().parents[1] / "examples"
    for k in (1, 2, 3):
        png = np.asarray(Image.open(examples / f"design_{k}.png").convert("RGBA"))
        np.testing.assert_array_equal(png, make_design(8, k, 256, style="flat").composite())
        assert (examples / f"design_{k}.psd").stat().st_size < 200_000
    folder = LayerStack.load(examples / "design_layers")
    truth = make_design(8, 1, 256, style="flat")
    assert [layer.name for layer in folder] == [layer.name for layer in truth]
    for i in range(len(truth)):
        np.testing.assert_array_equal(folder.render_layer(i), truth.render_layer(i))
