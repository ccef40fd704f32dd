"""`layered refine LAYERS IMAGE -o DIR`: refined layer folders, and bad input as one line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from layered.cli import main
from layered.stack import Layer, LayerStack


def _prediction(width: int, height: int) -> LayerStack:
    rng = np.random.default_rng(0)
    plate = np.full((height, width, 4), (40, 90, 160, 255), np.uint8)
    shape = rng.integers(0, 256, (height // 2, width // 2, 4), dtype=np.uint8)
    shape[..., 3] = 255
    return LayerStack(width, height, (Layer(plate, 0, 0, "plate"), Layer(shape, 2, 1, "shape")))


def test_refine_writes_layers_that_add_up_to_the_image(tmp_path, capsys):
    layers = _prediction(16, 12).save(tmp_path / "pred")
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "image.png")
    rc = main(["refine", str(layers), str(tmp_path / "image.png"), "-o", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "layers.json").read_text())
    assert (doc["width"], doc["height"], doc["working_size"], doc["refined"]) == (64, 48, [16, 12], True)
    got = LayerStack.load(tmp_path / "out").composite().astype(int)
    assert np.abs(got[..., :3] - image).max() <= 1 and (got[..., 3] == 255).all()
    # the output is ours: a second run replaces it; a folder of the user's is refused, untouched
    assert main(["refine", str(layers), str(tmp_path / "image.png"), "-o", str(tmp_path / "out")]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    capsys.readouterr()
    rc = main(["refine", str(layers), str(tmp_path / "image.png"), "-o", str(mine)])
    assert rc == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_aspect_ratio_mismatch_is_one_line_and_exit_2(tmp_path, capsys):
    layers = _prediction(64, 64).save(tmp_path / "pred")
    Image.new("RGB", (256, 128)).save(tmp_path / "wide.png")
    capsys.readouterr()
    rc = main(["refine", str(layers), str(tmp_path / "wide.png"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "64x64" in err[0] and "256x128" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_image_is_one_line_and_exit_2(tmp_path, capsys):
    layers = _prediction(8, 8).save(tmp_path / "pred")
    capsys.readouterr()
    rc = main(["refine", str(layers), str(tmp_path / "nope.png"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope.png" in err[0]
