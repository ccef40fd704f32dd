"""Stack-level helpers shared by every decomposer and the dataset tools: automatic layer count (pruning),
recursive splicing, and the layer-order convention (which layers overlap, and in what order they go).

Light (numpy only), so the classic method, the model pipeline, synthesis and curation use the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from layered.stack import Layer, LayerStack

# A layer is dropped by `prune_layers` when removing it changes no pixel of the composite by more than this
# many uint8 levels (premultiplied RGB and alpha).
AUTO_TOLERANCE = 3


def _premultiplied(pixels: np.ndarray) -> np.ndarray:
    out = pixels.astype(np.int32)
    out[..., :3] = (out[..., :3] * out[..., 3:4] + 127) // 255
    return out


def prune_layers(stack: LayerStack, tolerance: float = AUTO_TOLERANCE) -> tuple[LayerStack, list[int]]:
    """Drop empty layers and, top-down, every layer whose removal leaves the composite within `tolerance`.

    Each removal is checked against the composite of the original stack, so errors never add up past
    `tolerance`. At least one non-empty layer is kept when there is one. Returns the new stack and the kept
    indices (into the original stack).
    """
    kept = [i for i, layer in enumerate(stack.layers) if not layer.is_empty]
    if not kept:
        return stack.replace(layers=()), []
    reference = _premultiplied(stack.composite())
    for index in sorted(kept, reverse=True):
        if len(kept) == 1:
            break
        trial = [i for i in kept if i != index]
        candidate = _premultiplied(stack.replace(layers=tuple(stack.layers[i] for i in trial)).composite())
        if np.abs(candidate - reference).max() <= tolerance:
            kept = trial
    return stack.replace(layers=tuple(stack.layers[i] for i in kept)), kept


def splice_layers(stack: LayerStack, index: int, new_layers: Sequence[Layer]) -> LayerStack:
    """`stack` with layer `index` replaced by `new_layers` (bottom-first); every other layer is kept as is."""
    if not -len(stack) <= index < len(stack):
        raise IndexError(f"layer index {index} out of range for a stack of {len(stack)} layers")
    index %= len(stack)
    return stack.replace(layers=stack.layers[:index] + tuple(new_layers) + stack.layers[index + 1 :])


def split_layer(
    stack: LayerStack,
    index: int,
    decompose: Callable[[np.ndarray], LayerStack],
    drop_empty: bool = True,
    clip: bool | None = None,
) -> LayerStack:
    """Recursive decomposition: split layer `index` with `decompose` (full-canvas RGBA -> stack) and splice it in.

    The split layer is rendered on the full canvas with its opacity; with `clip` each new layer's alpha is
    multiplied by that rendering's alpha (so a decomposer that fills a background plate stays inside the
    layer's silhouette). The new layers are named after it ("name / k") and inherit its visibility.
    `clip=None` clips unless the decomposer refined its layers to the rendering (then they already add up to it).
    """
    if not -len(stack) <= index < len(stack):
        raise IndexError(f"layer index {index} out of range for a stack of {len(stack)} layers")
    index %= len(stack)
    original = stack.layers[index]
    rendered = stack.render_layer(index)
    sub = decompose(rendered)
    if (sub.width, sub.height) != (stack.width, stack.height):
        raise ValueError(f"decomposer returned a {sub.width}x{sub.height} stack for a {stack.width}x{stack.height} one")
    parts = list(sub.layers)
    if clip or (clip is None and not sub.refined):
        parts = [_clip(layer, rendered[..., 3]) for layer in parts]
    parts = [layer for layer in parts if not (drop_empty and layer.is_empty)]
    base = original.name or f"layer {index}"
    parts = [
        layer.replace(name=f"{base} / {k}", visible=original.visible, opacity=layer.opacity)
        for k, layer in enumerate(parts)
    ]
    return splice_layers(stack, index, parts)


def _clip(layer: Layer, alpha: np.ndarray) -> Layer:
    """`layer` with its alpha multiplied by the full-canvas `alpha` mask (0 outside the canvas), re-cropped."""
    height, width = alpha.shape
    canvas = np.zeros((height, width, 4), np.uint8)
    x0, y0 = max(layer.x, 0), max(layer.y, 0)
    x1, y1 = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = layer.pixels[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x]
    canvas[..., 3] = (canvas[..., 3].astype(np.uint32) * alpha + 127) // 255
    clipped = Layer.from_canvas(canvas, layer.name, opacity=layer.opacity, visible=layer.visible)
    return clipped


def occlusion_order(stack: LayerStack, tiers: list[int] | None = None) -> list[int]:
    """Bottom-first indices: overlapping layers keep their order; the rest go by tier (lower first), then
    the larger (more alpha) lower, then top-left first. The layer-order convention of the synthetic designs."""
    n = len(stack)
    tiers = tiers if tiers is not None else [0] * n
    masks = [layer.pixels[..., 3] > 0 for layer in stack]
    above = [[j for j in range(i + 1, n) if _masks_meet(stack[i], masks[i], stack[j], masks[j])] for i in range(n)]
    waiting = [0] * n
    for i in range(n):
        for j in above[i]:
            waiting[j] += 1
    key = [
        (tiers[i], -float(layer.pixels[..., 3].sum()) * layer.opacity, layer.y, layer.x)
        for i, layer in enumerate(stack)
    ]
    ready = [i for i in range(n) if waiting[i] == 0]
    order = []
    while ready:
        ready.sort(key=lambda i: key[i])
        i = ready.pop(0)
        order.append(i)
        for j in above[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    return order


def layers_overlap(a: Layer, b: Layer) -> bool:
    """Whether two layers have a pixel where both have alpha > 0."""
    return _masks_meet(a, a.pixels[..., 3] > 0, b, b.pixels[..., 3] > 0)


def _masks_meet(a: Layer, mask_a: np.ndarray, b: Layer, mask_b: np.ndarray) -> bool:
    left, top = max(a.x, b.x), max(a.y, b.y)
    right, bottom = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    if right <= left or bottom <= top:
        return False
    pa = mask_a[top - a.y : bottom - a.y, left - a.x : right - a.x]
    pb = mask_b[top - b.y : bottom - b.y, left - b.x : right - b.x]
    return bool((pa & pb).any())
