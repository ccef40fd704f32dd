"""Rich synthetic designs (v2, the default style): real fonts, colour emoji, icons, cut-outs, panels, banners.

Layer-order convention (bottom-first), the way designers stack a layout, so that a model can learn it:
  1. the background (flat colour, gradient, or photo-like texture);
  2. panels, banners and buttons (semi-transparent panels, ribbons, strips, buttons);
  3. objects (shapes, colour emoji, icons, photo cut-outs; a drop shadow belongs to its object's layer);
  4. text on top (titles in real fonts, and the labels of banners and buttons).
Within a kind, the larger element (more alpha) lies lower. Every element keeps at least MIN_VISIBLE of its
own area visible, and text never overlaps other text. `canonical_order` re-derives this order from the
layers alone (occlusion, then the convention), which is the order-aware metric's oracle.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from layered.layer_tools import occlusion_order
from layered.stack import Layer, LayerStack
from psd_pipeline import synth_elements as el
from psd_pipeline.synth_textures import photo_like

MIN_VISIBLE = 0.5
RANK = {"background": 0, "panel": 1, "banner": 1, "button": 1, "shape": 2, "emoji": 2, "icon": 2, "photo": 2}
RANK_TEXT = 3
BACKGROUNDS = ("flat", "gradient", "texture")
OBJECTS = ("shape", "emoji", "icon", "photo")
TRIES = 24  # positions tried per element before it is left out


@dataclasses.dataclass(frozen=True)
class RichDesign:
    """A design's layers (bottom-first) and the kind of each layer ("background:<style>", "panel", "text"...)."""

    stack: LayerStack
    kinds: tuple[str, ...]


def rank(kind: str) -> int:
    """The convention's tier of a layer kind: 0 background, 1 panels/banners, 2 objects, 3 text."""
    return RANK.get(kind.split(":", 1)[0], RANK_TEXT)


def draw_rich(seed: int, index: int, size: int = 256) -> RichDesign:
    """Design `index` of `seed` (depends only on the two), following the layer-order convention."""
    rng = np.random.default_rng([seed, index, 2])
    style, background = _background(rng, size)
    elements: list[el.Element] = []
    for _ in range(int(rng.choice(3, p=[0.35, 0.45, 0.2]))):
        elements.append(el.panel(rng, size) if rng.uniform() < 0.45 else el.banner(rng, size))
    makers = {"shape": el.shape, "emoji": el.emoji, "icon": el.icon, "photo": el.photo}
    for _ in range(int(rng.integers(1, 5))):
        elements.append(makers[OBJECTS[int(rng.integers(len(OBJECTS)))]](rng, size))
    backdrop = background[..., :3].reshape(-1, 3).mean(0).astype(np.float32)
    for _ in range(int(rng.choice(3, p=[0.2, 0.55, 0.25]))):
        ink = el.contrasting(backdrop, rng) if rng.uniform() < 0.6 else None  # mostly readable on the background
        elements.append(el.text_element(rng, size, ink=ink))
    return _layout(rng, size, style, background, elements)


def canonical_order(stack: LayerStack, kinds: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of `stack`'s layers in the order the convention gives from the layers alone.

    Layers that overlap keep their visible (occlusion) order; the rest go by tier, then larger lower, then
    by position (top-left first): what a decomposer that finds every layer exactly but is blind to the
    stacking can best do.
    """
    return occlusion_order(stack, [rank(kind) for kind in kinds])


def _layout(rng: np.random.Generator, size: int, style: str, background: np.ndarray, elements) -> RichDesign:
    """Sort by the convention, then place bottom-up where every element below stays visible enough."""
    items = []  # (element, parent index or None)
    for e in elements:
        items.append((e, None))
        if e.label is not None:
            items.append((e.label[0], len(items) - 1))
    order = sorted(range(len(items)), key=lambda i: (rank(items[i][0].kind), -items[i][0].area, i))
    placed: dict[int, tuple[int, int]] = {}
    canvas = _Canvas(size)
    layers = [Layer(background, 0, 0, "Background")]
    kinds = [f"background:{style}"]
    counts: dict[str, int] = {}
    for i in order:
        element = items[i][0]
        spot = next((xy for xy in _candidates(rng, items, i, placed, size) if canvas.fits(element, i, xy)), None)
        if spot is None:
            continue
        canvas.place(element, i, spot)
        placed[i] = spot
        is_text = rank(element.kind) == RANK_TEXT
        name = element.name
        if not is_text:
            counts[name] = counts.get(name, 0) + 1
            name = f"{name} {counts[name]}"
        layers.append(Layer(element.pixels, *spot, name))
        kinds.append("text" if is_text else element.kind)
    return RichDesign(LayerStack(size, size, tuple(layers)), tuple(kinds))


def _candidates(rng: np.random.Generator, items: list, i: int, placed: dict, size: int) -> list[tuple[int, int]]:
    """Positions to try for item `i`: a label goes where its placed parent puts it, others at TRIES random spots."""
    element, parent = items[i]
    h, w = element.pixels.shape[:2]
    if h > size or w > size:
        return []
    if parent is not None:
        if parent not in placed:
            return []
        _, dx, dy = items[parent][0].label
        px, py = placed[parent]
        return [(px + dx, py + dy)]
    return [(int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))) for _ in range(TRIES)]


@dataclasses.dataclass
class _Canvas:
    """What the layout has placed so far: how much of each foreground layer shows, and the boxes text holds."""

    size: int
    visible: list[np.ndarray] = dataclasses.field(default_factory=list)  # each layer's alpha times what lets it through
    own: list[float] = dataclasses.field(default_factory=list)  # each layer's own alpha, summed
    text_boxes: dict[int, tuple[int, int, int, int]] = dataclasses.field(default_factory=dict)  # labels: with parent

    def fits(self, element: el.Element, item: int, spot: tuple[int, int]) -> bool:
        """Whether `element` at `spot` stays on the canvas, off other text, and leaves every layer visible enough."""
        (x, y), (h, w) = spot, element.pixels.shape[:2]
        if not (0 <= x <= self.size - w and 0 <= y <= self.size - h):
            return False
        box = (x, y, x + w, y + h)
        if rank(element.kind) == RANK_TEXT and any(
            _boxes_meet(box, b) for owner, b in self.text_boxes.items() if owner != item
        ):
            return False
        if element.label is not None and any(
            _boxes_meet(_label_box(element, x, y), b) for b in self.text_boxes.values()
        ):
            return False
        alpha = _alpha(element)
        lost = [float((v[y : y + h, x : x + w] * alpha).sum()) for v in self.visible]
        return all(
            float(v.sum()) - loss >= MIN_VISIBLE * a for v, loss, a in zip(self.visible, lost, self.own, strict=True)
        )

    def place(self, element: el.Element, item: int, spot: tuple[int, int]) -> None:
        """Put `element` at `spot`: it covers what lies below, and its text (or its label's) holds its box."""
        (x, y), (h, w) = spot, element.pixels.shape[:2]
        alpha = _alpha(element)
        for v in self.visible:
            v[y : y + h, x : x + w] *= 1.0 - alpha
        canvas_alpha = np.zeros((self.size, self.size), np.float32)
        canvas_alpha[y : y + h, x : x + w] = alpha
        self.visible.append(canvas_alpha)
        self.own.append(float(alpha.sum()))
        if rank(element.kind) == RANK_TEXT:
            self.text_boxes[item] = (x, y, x + w, y + h)
        if element.label is not None:
            self.text_boxes[item + 1] = _label_box(element, x, y)


def _alpha(element: el.Element) -> np.ndarray:
    return element.pixels[..., 3].astype(np.float32) / 255.0


def _background(rng: np.random.Generator, size: int) -> tuple[str, np.ndarray]:
    """An opaque full-canvas layer: a flat colour, a linear or radial gradient, or a photo-like texture."""
    style = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if style == "flat":
        rgb = np.broadcast_to(el.colour(rng), (size, size, 3))
    elif style == "gradient":
        a = el.colour(rng)
        b = np.clip(a + rng.normal(0, 90, 3), 0, 255)
        if rng.uniform() < 0.5:
            rgb = el.gradient(rng, size, size, a, b)
        else:
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
            cx, cy = rng.uniform(0.2, 0.8, 2)
            t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
            t = (t / max(float(t.max()), 1e-6))[..., None]
            rgb = a * (1 - t) + b * t
    else:
        rgb = photo_like(rng, size, size).astype(np.float32)
    return style, el.rgba(rgb, np.ones((size, size), np.float32))


def _label_box(element: el.Element, x: int, y: int) -> tuple[int, int, int, int]:
    """Where the label of `element` placed at (x, y) goes on the canvas."""
    label, dx, dy = element.label
    return x + dx, y + dy, x + dx + label.pixels.shape[1], y + dy + label.pixels.shape[0]


def _boxes_meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
