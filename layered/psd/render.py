"""Compositing: psd-tools renders chosen source layers to sRGB RGBA; plain pixel layers are read directly.

Every output layer is rendered from original psd-tools layers, never from a previous approximation.
"""

from __future__ import annotations

import numpy as np

from layered.psd.color import stored_to_srgb, to_rgba8
from layered.psd.layers import ISOLATED_INTERACTION, why_not_expandable, why_not_plain
from layered.stack import Layer

Box = tuple[int, int, int, int]


def reference_composite(psd) -> tuple[np.ndarray, str]:
    """Photoshop's stored composite in sRGB when the file has one ("stored"), else psd-tools' full render."""
    image = stored_image(psd) if psd.has_preview() else None
    if image is not None and image.size == psd.size:
        return stored_to_srgb(psd, image), "stored"
    return render(psd, None), "psd-tools"


def stored_image(psd):
    """The stored composite as psd-tools' `topil(apply_icc=False)` gives it: un-matted from white.

    An 8-bit RGB document with transparency is un-matted here, in numpy, by psd-tools' own formula and
    truncation (`pil_io._remove_white_background`; byte-identical on the corpus, checked by a test): the
    same pixels, several times faster on a large canvas.
    """
    from PIL import Image
    from psd_tools.api.utils import get_transparency_index, has_transparency

    if psd.depth != 8 or psd.color_mode.name != "RGB" or not has_transparency(psd):
        return psd.topil(apply_icc=False)
    planes = psd._record.image_data.get_data(psd._record.header)  # the stored planes, matted over white
    index = get_transparency_index(psd)
    if not isinstance(planes, list) or len(planes) <= max(index, 2):
        return psd.topil(apply_icc=False)
    shape = (psd.height, psd.width)
    alpha = np.frombuffer(planes[index], np.uint8).reshape(shape)
    alpha_f = alpha.astype(np.float32)
    covered = np.minimum(alpha, 1).astype(np.float32)
    divisor = np.maximum(alpha_f, 1)
    out = np.empty(shape + (4,), np.uint8)
    for c in range(3):
        x = np.frombuffer(planes[c], np.uint8).reshape(shape).astype(np.float32)
        value = (x + alpha_f - 255) * np.float32(255.0) / divisor * covered + x * (1 - covered)  # in this order
        out[..., c] = np.floor(np.clip(value, 0, 255))
    out[..., 3] = alpha
    return Image.fromarray(out, "RGBA")


def render_layer(psd, members: list | None, name: str, viewport=None, cache: dict | None = None, *, shown=()) -> Layer:
    """`render` cropped to its content, as a Layer (what is kept: full canvases are transient)."""
    key = (None if members is None else tuple(sorted(id(m) for m in members)), viewport, tuple(sorted(shown)))
    if cache is not None and key in cache:
        return cache[key]
    layer = Layer.from_canvas(render(psd, members, viewport, shown=shown), name)
    if cache is not None:
        cache[key] = layer
    return layer


def render(psd, members: list | None, viewport: Box | None = None, *, shown=()) -> np.ndarray:
    """Full-canvas straight RGBA uint8 of `members` (and what is clipped to them) rendered by psd-tools.

    `members=None` renders every visible layer; `shown` holds the ids of hidden layers to draw as if they
    were visible (a hidden layer the editor keeps). Only `viewport` is computed when given; if the result
    touches a viewport edge that is not a canvas edge (an effect reaching further than the layer's box),
    the whole canvas is rendered instead.
    """
    from psd_tools.composite import composite

    width, height = psd.width, psd.height
    full = canvas_box(width, height)
    if members is None:
        layer_filter = None
    else:
        allowed: set[int] = set()
        for member in members:
            _allow(member, allowed)
            parent = member.parent
            while parent is not None and parent is not psd:
                allowed.add(id(parent))
                parent = parent.parent
        shown = set(shown)

        def layer_filter(layer) -> bool:
            return id(layer) in allowed and (layer.visible or id(layer) in shown)

    box = clip_box(viewport, full) if viewport is not None else full
    out = np.zeros((height, width, 4), np.uint8)
    if box is None:
        return out
    while True:
        color, _shape, alpha = composite(psd, color=1.0, alpha=0.0, viewport=box, layer_filter=layer_filter)
        patch = to_rgba8(psd, color, alpha)
        if box == full or not _touches_inner_edge(patch[..., 3], box, full):
            break
        box = full
    out[box[1] : box[3], box[0] : box[2]] = patch
    return out


def plain_pixels(psd, layer, probe: bool = False) -> np.ndarray | None:
    """A plain pixel layer (the core's `why_not_plain`, with a normal blend, not clipped, in an 8-bit RGB or
    greyscale document, under groups that can be expanded) read directly, without the compositor.

    Same result as `render(psd, [layer])` (tests check it on the corpus), several times faster. None when
    not plain; with `probe`, an empty array when it is (nothing read).
    """
    if (
        why_not_plain(layer) is not None
        or psd.depth != 8
        or psd.color_mode.name not in ("RGB", "GRAYSCALE")
        or layer.blend_mode.name != "NORMAL"
        or layer.clipping
    ):
        return None
    parent = layer.parent
    while parent is not None and parent is not psd:
        if why_not_expandable(parent, strict=True) not in (None, ISOLATED_INTERACTION):
            return None
        parent = parent.parent
    if probe:
        return np.zeros((0, 0, 4), np.uint8)
    width, height = psd.width, psd.height
    out = np.zeros((height, width, 4), np.uint8)
    box = clip_box(layer.bbox, canvas_box(width, height))
    if box is None:
        return out
    color = layer.numpy("color")
    shape = layer.numpy("shape")
    if color is None:
        return out
    if shape is None:
        shape = np.ones(color.shape[:2] + (1,), np.float32)
    alpha = shape * (layer.opacity / 255.0) * (layer.fill_opacity / 255.0)
    left, top = layer.bbox[0], layer.bbox[1]
    crop = (slice(box[1] - top, box[3] - top), slice(box[0] - left, box[2] - left))
    out[box[1] : box[3], box[0] : box[2]] = to_rgba8(psd, color[crop], alpha[crop])
    return out


def plain_layer(psd, layer, name: str) -> Layer | None:
    """A plain pixel layer (as `plain_pixels` decides) at its own offset and full extent, off-canvas parts
    kept, its opacity and fill as the layer's opacity: what the editor keeps editable. None when not plain."""
    if plain_pixels(psd, layer, probe=True) is None:
        return None
    color = layer.numpy("color")
    if color is None or layer.width <= 0 or layer.height <= 0:
        return Layer(np.zeros((0, 0, 4), np.uint8), 0, 0, name)
    shape = layer.numpy("shape")
    if shape is None:
        shape = np.ones(color.shape[:2] + (1,), np.float32)
    opacity = layer.opacity / 255.0 * layer.fill_opacity / 255.0
    return Layer(to_rgba8(psd, color, shape, clear=False), layer.left, layer.top, name, opacity=opacity)


def content_box(layer: Layer, width: int, height: int) -> Box | None:
    """The canvas box of the pixels of `layer` that have alpha and lie on the canvas, or None."""
    from layered.pixels import alpha_bbox

    box = alpha_bbox(layer.pixels) if layer.pixels.size else None
    if box is None:
        return None
    return clip_box((box[0] + layer.x, box[1] + layer.y, box[2] + layer.x, box[3] + layer.y), (0, 0, width, height))


def canvas_box(width: int, height: int) -> Box:
    return 0, 0, width, height


def clip_box(box, full) -> Box | None:
    left, top = max(box[0], full[0]), max(box[1], full[1])
    right, bottom = min(box[2], full[2]), min(box[3], full[3])
    return (left, top, right, bottom) if right > left and bottom > top else None


def union(boxes) -> Box | None:
    boxes = [b for b in boxes if b is not None and b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def pad(box, margin: int) -> Box | None:
    return None if box is None else (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin)


def overlap(a, b) -> bool:
    if a is None or b is None:
        return False
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _touches_inner_edge(alpha: np.ndarray, box, full) -> bool:
    """Whether any non-transparent pixel lies on an edge of `box` that is inside the canvas."""
    return bool(
        (box[1] > full[1] and alpha[0].any())
        or (box[3] < full[3] and alpha[-1].any())
        or (box[0] > full[0] and alpha[:, 0].any())
        or (box[2] < full[2] and alpha[:, -1].any())
    )


def _allow(layer, allowed: set[int]) -> None:
    allowed.add(id(layer))
    for clip in getattr(layer, "clip_layers", None) or ():
        _allow(clip, allowed)
    if layer.is_group():
        for child in layer:
            _allow(child, allowed)
