"""PPTX export read back with python-pptx: slide size, one picture per layer, positions, order, pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import random_stack
from PIL import Image

from layered.formats import write_stack
from layered.formats.pptx import emu_per_pixel
from layered.stack import Layer, LayerStack

pptx = pytest.importorskip("pptx")
from pptx.oxml.ns import qn  # noqa: E402


def pictures(path):
    presentation = pptx.Presentation(path)
    assert len(presentation.slides) == 1
    return presentation, list(presentation.slides[0].shapes)


def check(stack: LayerStack, path) -> None:
    presentation, shapes = pictures(path)
    scale = emu_per_pixel(stack.width, stack.height)
    assert (presentation.slide_width, presentation.slide_height) == (stack.width * scale, stack.height * scale)
    assert len(shapes) == len(stack)
    for shape, layer in zip(shapes, stack.layers, strict=True):  # shape-tree order is z-order, bottom first
        assert shape.shape_type == pptx.enum.shapes.MSO_SHAPE_TYPE.PICTURE
        assert shape.name == layer.name
        assert (shape.left, shape.top) == (layer.x * scale, layer.y * scale)
        if layer.pixels.size:
            assert (shape.width, shape.height) == (layer.width * scale, layer.height * scale)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(shape.image.blob)).convert("RGBA")), layer.pixels)
        assert (shape.element.nvPicPr.cNvPr.get("hidden") == "1") == (not layer.visible)
        fix = shape.element.blipFill.find(qn("a:blip")).find(qn("a:alphaModFix"))
        amount = 100000 if fix is None else int(fix.get("amt"))
        assert amount == round(layer.opacity * 100000)


def test_random_stack(tmp_path):
    stack = random_stack(np.random.default_rng(21), canvas=(200, 120), count=5)
    layers = list(stack.layers)
    layers[3] = layers[3].replace(visible=False)
    stack = stack.replace(layers=tuple(layers))
    check(stack, write_stack(stack, tmp_path / "out.pptx"))
    assert emu_per_pixel(200, 120) == 9525  # 96 dpi


def test_one_layer_and_an_empty_layer(tmp_path):
    pixels = np.full((3, 4, 4), 77, np.uint8)
    one = LayerStack(160, 100, (Layer(pixels, 5, 6, "one"),))
    check(one, write_stack(one, tmp_path / "one.pptx"))
    empty = LayerStack(160, 100, (Layer(pixels, 5, 6, "a"), Layer(np.zeros((0, 0, 4), np.uint8), 0, 0, "empty")))
    check(empty, write_stack(empty, tmp_path / "empty.pptx"))


def test_canvas_sizes_outside_powerpoints_slide_range(tmp_path):
    """Tiny and huge canvases scale to whole EMU per pixel inside PowerPoint's 1 to 56 inch slide sides."""
    assert emu_per_pixel(32, 20) == 45720  # ceil(914400 / 20): the short side reaches one inch
    assert emu_per_pixel(4096, 4096) == 9525  # 42.7 inches fit at 96 dpi
    assert emu_per_pixel(8000, 300) == 6400  # 51206400 // 8000: the long side stays within 56 inches
    stack = LayerStack(4096, 4096, (Layer(np.full((8, 8, 4), 255, np.uint8), 4090, -2, "corner"),))
    check(stack, write_stack(stack, tmp_path / "big.pptx"))
