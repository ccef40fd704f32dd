"""Curation (the paper's rules): drop layers that do not show, merge non-overlapping neighbours, downscale."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from layered.layer_tools import layers_overlap as overlaps  # whether two layers share a pixel with alpha > 0
from layered.pixels import resize_rgba
from layered.psd.errors import Rejected
from layered.stack import Layer, LayerStack, composite


@dataclasses.dataclass(frozen=True)
class CurationOptions:
    """Thresholds, exposed as `layered psd build` options."""

    max_layers: int = 20
    min_visible: float = 1e-4  # fraction of the canvas a layer must show (sum of its visible alpha)
    max_side: int | None = None


@dataclasses.dataclass
class Curated:
    stack: LayerStack
    kinds: list[str]
    groups: list[list[int]]  # for each output layer, the indices of the extracted layers in it
    dropped: list[str]
    merges: list[str]
    scale: float = 1.0
    composite: np.ndarray | None = None  # filled by whoever flattens it first


def curate(stack: LayerStack, kinds: list[str], options: CurationOptions) -> Curated:
    """Apply the rules in order: drop invisible layers, merge down to `max_layers`, then downscale."""
    layers = list(stack.layers)
    groups = [[i] for i in range(len(layers))]
    kinds = list(kinds)
    visible = visible_area(stack)
    threshold = max(0.5, options.min_visible * stack.width * stack.height)
    dropped = []
    keep = []
    for i, layer in enumerate(layers):
        if visible[i] < threshold:
            dropped.append(f"{layer.name!r}: visible area {visible[i]:.1f} px < {threshold:.1f} px")
        else:
            keep.append(i)
    if not keep:
        raise Rejected("nothing-visible", "every layer is covered or below the visibility threshold")
    layers = [layers[i] for i in keep]
    kinds = [kinds[i] for i in keep]
    groups = [groups[i] for i in keep]
    merges: list[str] = []
    while len(layers) > options.max_layers:
        pair = _best_merge(layers)
        if pair is None:
            raise Rejected(
                "too-many-layers",
                f"{len(layers)} layers overlap too much to merge down to {options.max_layers} (--max-layers)",
            )
        i, j = pair
        merged = _merge(layers[i], layers[j])
        merges.append(f"merged non-overlapping {layers[i].name!r} and {layers[j].name!r}")
        # j (above i) slides down to i: legal because it overlaps none of the layers between them
        layers[i] = merged
        kinds[i] = kinds[i] if kinds[i] == kinds[j] else "merged"
        groups[i] = groups[i] + groups[j]
        del layers[j], kinds[j], groups[j]
    out = LayerStack(stack.width, stack.height, tuple(layers))
    scale = 1.0
    if options.max_side and max(stack.width, stack.height) > options.max_side:
        out, scale = downscale(out, options.max_side)
    return Curated(out, kinds, groups, dropped, merges, scale)


def visible_area(stack: LayerStack) -> list[float]:
    """For each layer, the sum over the canvas of its alpha times the transmittance of the layers above."""
    transmit = np.ones((stack.height, stack.width), np.float32)
    areas = [0.0] * len(stack.layers)
    for i in range(len(stack.layers) - 1, -1, -1):
        layer = stack.layers[i]
        box = _on_canvas(layer, stack.width, stack.height)
        if box is None or not layer.visible:
            continue
        left, top, right, bottom = box
        alpha = layer.pixels[top - layer.y : bottom - layer.y, left - layer.x : right - layer.x, 3]
        alpha = alpha.astype(np.float32) * (layer.opacity / 255.0)
        region = transmit[top:bottom, left:right]
        areas[i] = float((alpha * region).sum())
        region *= 1.0 - alpha
    return areas


def _best_merge(layers: list[Layer]) -> tuple[int, int] | None:
    """The pair (i, j), i < j, to merge: j overlaps none of layers i..j-1; smallest combined area first."""
    best, best_cost = None, None
    for j in range(1, len(layers)):
        for i in range(j - 1, -1, -1):
            if overlaps(layers[j], layers[i]):
                break  # j cannot slide below a layer it overlaps
            cost = _area(layers[i]) + _area(layers[j]) + (j - i - 1) * 1e-3
            if best_cost is None or cost < best_cost:
                best, best_cost = (i, j), cost
    return best


def _area(layer: Layer) -> float:
    return float(layer.width * layer.height)


def _merge(a: Layer, b: Layer) -> Layer:
    left, top = min(a.x, b.x), min(a.y, b.y)
    right, bottom = max(a.x + a.width, b.x + b.width), max(a.y + a.height, b.y + b.height)
    shifted = [layer.replace(x=layer.x - left, y=layer.y - top) for layer in (a, b)]
    pixels = composite(shifted, right - left, bottom - top)
    return Layer(pixels, left, top, f"{a.name} + {b.name}")


def downscale(stack: LayerStack, max_side: int) -> tuple[LayerStack, float]:
    """Every layer resized on the full canvas in premultiplied space so that the longer side is `max_side`."""
    scale = max_side / max(stack.width, stack.height)
    size = (max(1, round(stack.width * scale)), max(1, round(stack.height * scale)))
    layers = []
    for i, layer in enumerate(stack.layers):
        full = stack.render_layer(i)
        small = resize_rgba(full, size, Image.Resampling.BOX)
        layers.append(Layer.from_canvas(small, layer.name))
    return LayerStack(size[0], size[1], tuple(layers)), scale


def downscale_image(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference image at the curated size (RGBA premultiplied, or RGB), with the same filter."""
    if pixels.shape[2] == 4:
        return resize_rgba(pixels, size, Image.Resampling.BOX)
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))


def _on_canvas(layer: Layer, width: int, height: int):
    left, top = max(layer.x, 0), max(layer.y, 0)
    right, bottom = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    return (left, top, right, bottom) if right > left and bottom > top else None
