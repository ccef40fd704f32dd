"""The layer model: cropping, compositing against PIL and the formula, the layer folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import over_reference, pil_composite, random_stack

from layered.errors import InputError
from layered.stack import Layer, LayerStack


@pytest.mark.parametrize("seed", range(8))
def test_composite_matches_pil_chain(seed):
    stack = random_stack(np.random.default_rng(seed), canvas=(40, 30), count=5)
    ours = stack.composite().astype(int)
    ref = pil_composite(stack).astype(int)
    assert np.abs(ours[..., 3] - ref[..., 3]).max() <= 2
    # PIL works on straight 8-bit colour, which is ill-conditioned where the result is nearly clear
    visible = ref[..., 3] >= 64
    assert np.abs(ours[..., :3] - ref[..., :3])[visible].max() <= 2


@pytest.mark.parametrize("seed", range(8))
def test_composite_matches_formula(seed):
    stack = random_stack(np.random.default_rng(100 + seed), canvas=(33, 21), count=6)
    ours = stack.composite().astype(float)
    ref = over_reference(stack)
    assert np.abs(ours[..., 3] - ref[..., 3]).max() <= 1
    assert np.abs(ours[..., :3] - ref[..., :3])[ref[..., 3] >= 1].max() <= 1


def test_hidden_and_off_canvas_layers_do_not_contribute():
    red = np.zeros((4, 4, 4), np.uint8)
    red[...] = (255, 0, 0, 255)
    stack = LayerStack(8, 8, (Layer(red, 2, 2, visible=False), Layer(red, 100, 100), Layer(red, -10, 3)))
    assert not stack.composite().any()


def test_offset_partly_off_canvas():
    blue = np.zeros((4, 4, 4), np.uint8)
    blue[...] = (0, 0, 255, 255)
    out = LayerStack(6, 6, (Layer(blue, -2, 4),)).composite()
    assert out[4:6, 0:2, 2].min() == 255 and out[..., 3].sum() == 4 * 255


def test_from_images_crops_to_alpha_bbox():
    canvas = np.zeros((20, 30, 4), np.uint8)
    canvas[5:9, 10:17] = (10, 20, 30, 200)
    stack = LayerStack.from_images([canvas, np.zeros_like(canvas)], names=["shape", "empty"])
    shape, empty = stack.layers
    assert (shape.x, shape.y, shape.width, shape.height) == (10, 5, 7, 4)
    assert empty.is_empty and stack.size == (30, 20)
    assert np.array_equal(stack.render_layer(0), canvas)


def test_layers_are_immutable_values(rng):
    layer = random_stack(rng).layers[0]
    with pytest.raises(ValueError):
        layer.pixels[0, 0, 0] = 1
    moved = layer.replace(x=layer.x + 1)
    assert moved.x == layer.x + 1 and moved.pixels is layer.pixels


def test_layer_folder_round_trip(tmp_path, rng):
    stack = random_stack(rng, count=3)
    stack = stack.replace(layers=stack.layers + (stack.layers[0].replace(name="../../etc/passwd\x00", visible=False),))
    stack.save(tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "composite.png" in files and "layers.json" in files
    assert all("/" not in f and "\x00" not in f for f in files)
    back = LayerStack.load(tmp_path / "out")
    assert back.size == stack.size and len(back) == len(stack)
    for a, b in zip(stack.layers, back.layers, strict=True):
        assert (a.name, a.x, a.y, a.visible) == (b.name, b.x, b.y, b.visible)
        assert a.opacity == pytest.approx(b.opacity)
        assert np.array_equal(a.pixels, b.pixels)
    assert not list(tmp_path.glob(".*tmp"))


def test_load_refuses_paths_outside_the_folder(tmp_path, rng):
    random_stack(rng, count=1).save(tmp_path / "s")
    spec = tmp_path / "s" / "layers.json"
    doc = json.loads(spec.read_text())
    doc["layers"][0]["file"] = "../x.png"
    spec.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="outside"):
        LayerStack.load(tmp_path / "s")


def test_load_refuses_truncated_png(tmp_path, rng):
    stack = random_stack(rng, count=1)
    stack.save(tmp_path / "s")
    png = tmp_path / "s" / json.loads((tmp_path / "s" / "layers.json").read_text())["layers"][0]["file"]
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(InputError):
        LayerStack.load(tmp_path / "s")


def test_notes_are_written_only_when_there_are_some_and_checked_on_load(tmp_path, rng):
    stack = random_stack(rng, count=1)
    stack.save(tmp_path / "plain")
    assert "notes" not in json.loads((tmp_path / "plain" / "layers.json").read_text())
    assert LayerStack.load(tmp_path / "plain").notes == ()
    noted = stack.replace(notes=["a group merged into one layer"])
    assert noted.notes == ("a group merged into one layer",)
    noted.save(tmp_path / "noted")
    spec = tmp_path / "noted" / "layers.json"
    assert json.loads(spec.read_text())["notes"] == ["a group merged into one layer"]
    assert LayerStack.load(tmp_path / "noted").notes == noted.notes
    doc = json.loads(spec.read_text())
    doc["notes"] = "not a list"
    spec.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="notes must be a list of strings"):
        LayerStack.load(tmp_path / "noted")
