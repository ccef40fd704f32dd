"""PSD: our files as psd-tools reads them, psd-tools' own composite of them, and real Photoshop files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_stack
from psd_tools import PSDImage

from layered.errors import InputError
from layered.formats import psd as psd_format
from layered.formats import read_stack, write_stack
from layered.stack import Layer, LayerStack


def psnr_premultiplied(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two straight-alpha RGBA images compared premultiplied (colour under alpha 0 is moot)."""

    def premultiplied(x):
        x = x.astype(np.float64)
        return np.concatenate([x[..., :3] * x[..., 3:] / 255.0, x[..., 3:]], axis=-1)

    mse = np.mean((premultiplied(a) - premultiplied(b)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def stack() -> LayerStack:
    """Random partial-alpha layers, partly off-canvas, mixed opacity, one hidden."""
    stack = random_stack(np.random.default_rng(7), canvas=(64, 48), count=5)
    layers = list(stack.layers)
    layers[2] = layers[2].replace(visible=False, name="hidden ünïcode 🎨")
    return stack.replace(layers=tuple(layers))


def test_psd_tools_reads_back_our_layers(tmp_path, stack):
    path = write_stack(stack, tmp_path / "out.psd")
    psd = PSDImage.open(path)
    assert psd.size == stack.size and psd.depth == 8
    found = list(psd)
    assert len(found) == len(stack)
    for theirs, ours in zip(found, stack.layers, strict=True):
        assert theirs.kind == "pixel"
        assert theirs.name == ours.name
        assert (theirs.left, theirs.top) == (ours.x, ours.y)
        assert theirs.visible == ours.visible
        assert theirs.opacity == round(ours.opacity * 255)
        assert np.array_equal(np.asarray(theirs.topil().convert("RGBA")), ours.pixels)


def test_psd_tools_composite_matches_ours(tmp_path, stack):
    """psd-tools' own renderer (from the layers) and its reading of our stored preview both match ours."""
    path = write_stack(stack, tmp_path / "out.psd")
    ours = stack.composite()
    rendered = np.asarray(PSDImage.open(path).composite(force=True).convert("RGBA"))
    assert psnr_premultiplied(rendered, ours) >= 45
    preview = np.asarray(PSDImage.open(path).composite().convert("RGBA"))  # the stored merged image
    assert psnr_premultiplied(preview, ours) >= 45
    assert np.abs(preview[..., 3].astype(int) - ours[..., 3]).max() <= 1


def test_layer_names_longer_than_psd_allows_are_cut(tmp_path):
    layer = Layer(np.full((2, 2, 4), 255, np.uint8), 0, 0, "é" * 300)
    got = read_stack(write_stack(LayerStack(4, 4, (layer,)), tmp_path / "long.psd"))
    assert got[0].name == "é" * 255


def test_stack_without_layers(tmp_path):
    got = read_stack(write_stack(LayerStack(5, 3), tmp_path / "none.psd"))
    assert got.size == (5, 3) and len(got) == 0


# Real Photoshop files made of plain pixel layers (groups included): our composite of what we read
# must match the composite Photoshop stored in the file.
PLAIN_PIXEL_FILES = ["2layers.psd", "semi-transparent-layers.psd", "transparentbg-gimp.psd", "broken-groups.psd"]


@pytest.mark.parametrize("name", PLAIN_PIXEL_FILES)
def test_real_psd_recomposes_to_its_stored_composite(shared_dir, name):
    path = shared_dir / "psd-corpus" / name
    stack, notes = psd_format.read_with_notes(path)
    assert notes == []
    reference = PSDImage.open(path)
    leaves = [layer for layer in reference.descendants() if not layer.is_group()]
    assert [layer.name for layer in stack] == [layer.name for layer in leaves]
    assert [(layer.x, layer.y) for layer in stack if not layer.is_empty] == [
        (leaf.left, leaf.top) for leaf in leaves if leaf.has_pixels()
    ]
    stored = np.asarray(reference.topil().convert("RGBA"))
    assert psnr_premultiplied(stack.composite(), stored) >= 45


def test_real_psd_hidden_layers_and_rasterised_shapes(shared_dir):
    """hidden-layer.psd: shape layers become pixels (with a note), the hidden one stays hidden."""
    path = shared_dir / "psd-corpus" / "hidden-layer.psd"
    stack, notes = psd_format.read_with_notes(path)
    reference = PSDImage.open(path)
    assert [layer.visible for layer in stack] == [layer.visible for layer in reference]
    assert not all(layer.visible for layer in stack)
    assert any(note.startswith("rasterised to pixels: 'Shape 1' (shape)") for note in notes)
    assert psnr_premultiplied(stack.composite(), np.asarray(reference.topil().convert("RGBA"))) >= 45


def test_hidden_group_hides_its_children(shared_dir):
    path = shared_dir / "psd-corpus" / "hidden-groups.psb"
    stack, _ = psd_format.read_with_notes(path)
    reference = PSDImage.open(path)
    leaves = [layer for layer in reference.descendants() if not layer.is_group()]
    assert [layer.visible for layer in stack] == [leaf.is_visible() for leaf in leaves]
    assert psnr_premultiplied(stack.composite(), np.asarray(reference.topil().convert("RGBA"))) >= 45


def test_an_adjustment_with_nothing_beneath_opens_empty_with_a_reason(shared_dir):
    path = shared_dir / "psd-corpus" / "layers" / "curves.psd"
    stack, notes = psd_format.read_with_notes(path)
    assert np.asarray(PSDImage.open(path).topil().convert("RGBA"))[..., 3].max() == 0  # Photoshop shows nothing
    assert len(stack) == 0
    assert notes == ["layers not read (no visible layer renders any pixel)"]


def test_not_a_psd(tmp_path):
    fake = tmp_path / "fake.psd"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match="not a PSD file") as info:
        read_stack(fake)
    assert "\n" not in str(info.value)


def test_truncated_psd(tmp_path, shared_dir):
    data = (shared_dir / "psd-corpus" / "2layers.psd").read_bytes()
    cut = tmp_path / "cut.psd"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError) as info:
        read_stack(cut)
    assert "\n" not in str(info.value)


def test_canvas_over_the_size_limit_is_refused_from_the_header(tmp_path):
    header = b"8BPS" + (1).to_bytes(2, "big") + bytes(6) + (4).to_bytes(2, "big")
    header += (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big") + (8).to_bytes(2, "big") + (3).to_bytes(2, "big")
    huge = tmp_path / "huge.psd"
    huge.write_bytes(header + bytes(64))
    with pytest.raises(InputError, match="larger than the limit"):
        read_stack(huge)


def test_pillow_reads_our_merged_image(tmp_path, stack):
    """A second, independent PSD reader sees the preview as Photoshop stores it: our composite over white."""
    from PIL import Image

    with Image.open(write_stack(stack, tmp_path / "out.psd")) as image:
        assert image.format == "PSD" and image.size == stack.size and image.mode == "RGBA"
        assert len(image.layers) == len(stack)
        merged = np.asarray(image.convert("RGBA")).astype(float)
    ours = stack.composite().astype(float)
    alpha = ours[..., 3:] / 255
    over_white = np.where(alpha > 0, ours[..., :3] * alpha + 255 * (1 - alpha), ours[..., :3])
    assert np.abs(merged[..., :3] - over_white).max() <= 1
    assert np.array_equal(merged[..., 3], ours[..., 3])
