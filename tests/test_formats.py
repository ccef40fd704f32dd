"""Every readable format round-trips stacks exactly: random stacks, one layer, an empty layer, a 4096 canvas.

The reference is the stack that was written; PSD keeps opacity in 1/255 steps, the others exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import alpha_over_psnr, colour_managed_composite, random_stack
from psd_tools import PSDImage

from layered.errors import InputError
from layered.formats import EXPORT_KINDS, FORMATS, PSD_SUFFIXES, STACK_SUFFIXES, read_stack, write_stack
from layered.stack import Layer, LayerStack

READABLE = ["psd", "ora", "zip"]
OPACITY_TOL = {"psd": 0.5 / 255, "ora": 0.0, "zip": 0.0}


def assert_same_stack(got: LayerStack, want: LayerStack, opacity_tol: float = 0.0) -> None:
    """Same canvas, layer order, names, flags, opacity; exact pixels and offsets (empty stays empty)."""
    assert got.size == want.size
    assert [layer.name for layer in got] == [layer.name for layer in want]
    for g, w in zip(got.layers, want.layers, strict=True):
        assert g.visible == w.visible
        assert abs(g.opacity - w.opacity) <= opacity_tol
        if w.pixels.size == 0:
            assert g.is_empty
        else:
            assert (g.x, g.y) == (w.x, w.y)
            assert np.array_equal(g.pixels, w.pixels)


def _stack_with_hidden(seed: int) -> LayerStack:
    stack = random_stack(np.random.default_rng(seed), canvas=(40, 28), count=4)
    layers = list(stack.layers)
    layers[1] = layers[1].replace(visible=False)
    return stack.replace(layers=tuple(layers))


@pytest.mark.parametrize("kind", READABLE)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_stack_round_trips(tmp_path, kind, seed):
    stack = _stack_with_hidden(seed)
    path = write_stack(stack, tmp_path / f"out.{kind}")
    assert_same_stack(read_stack(path), stack, OPACITY_TOL[kind])


@pytest.mark.parametrize("kind", READABLE)
def test_one_layer_round_trips(tmp_path, kind, rng):
    pixels = rng.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    stack = LayerStack(9, 7, (Layer(pixels, 0, 0, "only"),))
    assert_same_stack(read_stack(write_stack(stack, tmp_path / f"one.{kind}")), stack)


@pytest.mark.parametrize("kind", READABLE)
def test_empty_layers_round_trip(tmp_path, kind, rng):
    """A 0 x 0 layer and a layer whose pixels are all transparent survive, in place, with their names."""
    clear = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    clear[..., 3] = 0
    opaque = np.full((4, 4, 4), 255, np.uint8)
    stack = LayerStack(
        16,
        12,
        (
            Layer(opaque, 2, 3, "below"),
            Layer(np.zeros((0, 0, 4), np.uint8), 0, 0, "nothing"),
            Layer(clear, 6, 1, "clear", opacity=0.4),
            Layer(opaque, -1, 9, "above"),
        ),
    )
    got = read_stack(write_stack(stack, tmp_path / f"empty.{kind}"))
    assert_same_stack(got, stack, OPACITY_TOL[kind])
    assert np.array_equal(got.composite(), stack.composite())


@pytest.mark.parametrize("kind", READABLE)
def test_large_canvas_round_trips(tmp_path, kind, rng):
    small = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    stack = LayerStack(
        4096,
        4096,
        (Layer(small, 4080, -5, "corner"), Layer(small[:5, :7], 0, 4094, "edge"), Layer(small, 2000, 2000, "mid")),
    )
    assert_same_stack(read_stack(write_stack(stack, tmp_path / f"big.{kind}")), stack)


def test_layer_folder_is_readable_by_read_stack(tmp_path):
    stack = _stack_with_hidden(5)
    assert_same_stack(read_stack(stack.save(tmp_path / "folder")), stack)


def test_registered_formats():
    assert set(EXPORT_KINDS) == {"psd", "ora", "zip", "pptx"}
    assert set(STACK_SUFFIXES) == {".psd", ".psb", ".ora", ".zip"}
    assert set(PSD_SUFFIXES) == {".psd", ".psb"}
    assert all(kind in FORMATS for kind in EXPORT_KINDS) and all(s[1:] in FORMATS for s in STACK_SUFFIXES)


@pytest.mark.parametrize("suffix", STACK_SUFFIXES)
def test_read_stack_reads_every_advertised_suffix(tmp_path, request, suffix):
    """Each suffix the registry advertises is read: the kinds we write round-trip, and a read-only one (.psb,
    Photoshop's large-document format) is Photoshop's own file, checked against psd-tools and its stored composite."""
    kind = suffix[1:]
    if kind in EXPORT_KINDS:
        stack = _stack_with_hidden(3)
        assert_same_stack(read_stack(write_stack(stack, tmp_path / f"out{suffix}")), stack, OPACITY_TOL[kind])
        return
    path = request.getfixturevalue("shared_dir") / "psd-corpus" / f"2layers{suffix}"
    assert path.is_file(), f"no corpus file to read {suffix} with: add a sample for it here"
    stack, psd = read_stack(path), PSDImage.open(path)
    assert stack.size == psd.size and [layer.name for layer in stack] == [layer.name for layer in psd.descendants()]
    assert alpha_over_psnr([stack.composite()], colour_managed_composite(psd)) >= 45


def test_unknown_suffix_and_missing_file(tmp_path):
    odd = tmp_path / "layers.xcf"
    odd.write_bytes(b"gimp xcf v011")
    with pytest.raises(InputError, match="cannot read this kind of file"):
        read_stack(odd)
    with pytest.raises(InputError, match="no such file"):
        read_stack(tmp_path / "missing.psd")
    with pytest.raises(InputError, match="unknown export format"):
        write_stack(_stack_with_hidden(0), tmp_path / "out.tiff")
    assert not (tmp_path / "out.tiff").exists()


@pytest.mark.parametrize("kind", ["psd", "ora", "zip", "pptx"])
def test_failed_write_leaves_no_file(tmp_path, kind, monkeypatch):
    """Writes are atomic: an error half-way leaves neither the target nor a temporary file behind."""
    import layered.stack

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(layered.stack.LayerStack, "composite", broken)
    monkeypatch.setattr(layered.stack.LayerStack, "save", broken)
    monkeypatch.setattr("PIL.Image.Image.save", broken)
    with pytest.raises(RuntimeError):
        write_stack(_stack_with_hidden(0), tmp_path / f"out.{kind}")
    assert list(tmp_path.iterdir()) == []
