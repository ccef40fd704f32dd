"""Photoshop PSD/PSB as a layer stack, for the editor and the CLI: read layers for editing, write a document.

Writing is the PSD core's one writer (`layered.psd.writer`). Reading walks psd-tools' layer tree: groups
are flattened into their children (group visibility and opacity folded in); plain pixel layers
(`layered.psd.layers.why_not_plain`) keep their exact pixels; layers psd-tools cannot hand over as plain
pixels (type, shape, smart object, fill, masked or clipped layers) are rasterised with `layer.composite()`;
adjustment layers are skipped. Each simplification is logged as a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from layered.errors import InputError
from layered.fileio import MAX_PIXELS, to_rgba_array
from layered.psd.errors import Rejected
from layered.psd.header import open_psd
from layered.psd.layers import why_not_plain
from layered.psd.writer import write_psd as write  # what the registry calls for .psd
from layered.stack import Layer, LayerStack

__all__ = ["read", "read_with_notes", "write"]

logger = logging.getLogger(__name__)


def read(path: str | os.PathLike) -> LayerStack:
    """A PSD/PSB as a LayerStack for editing; what had to be simplified is logged as warnings."""
    stack, notes = read_with_notes(path)
    for note in notes:
        logger.warning("%s: %s", path, note)
    return stack


@dataclasses.dataclass
class _Walk:
    """What a walk of the layer tree collects: the layers bottom-first, and one note per simplification."""

    max_pixels: int
    layers: list[Layer] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def read_with_notes(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[LayerStack, list[str]]:
    """A PSD/PSB as a LayerStack, and one line per layer that was rasterised, skipped or approximated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        psd, _header = open_psd(path, max_pixels)
    except Rejected as exc:  # the core's reason, said about this file
        raise InputError(f"{path}: {exc.detail}") from None
    walk = _Walk(max_pixels)
    try:
        _walk(psd, walk, visible=True, opacity=1.0, prefix="")
    except InputError:
        raise
    except Exception as exc:  # psd-tools on a damaged file: any parse error means "bad input"
        raise InputError(f"{path}: cannot read the layers of this PSD ({type(exc).__name__}: {exc})") from None
    return LayerStack(psd.width, psd.height, tuple(walk.layers)), walk.notes


def _walk(group, walk: _Walk, *, visible: bool, opacity: float, prefix: str) -> None:
    """Append the layers of `group` bottom-first to `walk`, folding group visibility and opacity in."""
    from psd_tools.api.layers import AdjustmentLayer

    for layer in group:
        label = f"{prefix}{layer.name}"
        if layer.is_group():
            if layer.blend_mode.name not in ("PASS_THROUGH", "NORMAL"):
                walk.notes.append(f"group {label!r}: blend mode {layer.blend_mode.name} flattened as normal")
            inner = opacity * layer.opacity / 255
            _walk(layer, walk, visible=visible and layer.visible, opacity=inner, prefix=f"{label}/")
            continue
        if layer.clipping and _clip_base(layer) is not None:
            continue  # drawn into its base layer's rasterisation
        if isinstance(layer, AdjustmentLayer):
            walk.notes.append(f"layer {label!r}: {layer.kind} adjustment layer skipped (no pixels of its own)")
            continue
        if max(layer.width, 0) * max(layer.height, 0) > walk.max_pixels:
            walk.notes.append(f"layer {label!r}: {layer.width}x{layer.height} is over the size limit, skipped")
            continue
        if layer.blend_mode.name != "NORMAL":
            walk.notes.append(f"layer {label!r}: blend mode {layer.blend_mode.name} flattened as normal")
        pixels, left, top, own_opacity = _pixels(layer, label, walk.notes)
        if pixels.size == 0:
            left = top = 0
        walk.layers.append(Layer(pixels, left, top, layer.name, opacity * own_opacity, visible and layer.visible))


def _pixels(layer, label: str, notes: list[str]) -> tuple[np.ndarray, int, int, float]:
    """(pixels, left, top, opacity) of one layer: its own channels when plain, else its rasterisation."""
    reason = why_not_plain(layer)
    pil = layer.topil() if reason is None and layer.has_pixels() else None
    if pil is not None and pil.mode not in ("RGBA", "LA", "RGB", "L"):
        reason = f"{pil.mode} pixels"  # e.g. CMYK: topil() drops the transparency
    if reason is None:
        pixels = to_rgba_array(pil) if pil is not None else np.zeros((0, 0, 4), np.uint8)
        return pixels, layer.left, layer.top, layer.opacity / 255 * layer.fill_opacity / 255
    notes.append(f"layer {label!r}: rasterised ({reason})")
    left, top = layer.bbox[:2]
    return _rasterise(layer), left, top, 1.0  # composite() has applied the layer's opacity and fill already


def _rasterise(layer) -> np.ndarray:
    """The layer as psd-tools renders it (masks, clipping, effects) over its bbox, hidden or not."""
    image = layer.composite(layer_filter=lambda other: other is layer or other.visible)
    return to_rgba_array(image) if image is not None else np.zeros((0, 0, 4), np.uint8)


def _clip_base(layer):
    """The layer that the clipping layer `layer` clips to, or None."""
    siblings = list(layer.parent) if layer.parent is not None else []
    if layer not in siblings:
        return None
    for below in reversed(siblings[: siblings.index(layer)]):
        if not below.clipping:
            return below
    return None
