"""The peel decomposer: lift off the topmost elements, fill in what they covered, repeat.

One round, on the current image C (what is left) at the working size:
  1. the network (`layered.peel_model.PeelNet`) predicts the top elements' alpha a, their kind at each pixel,
     the boxes of top text elements and where two top elements touch (the mean of its maps for the image and
     for its mirror image);
  2. the alpha is split into elements: text pixels by the text box they fall in (a line or a paragraph is one
     element), the others by connected component, cut where two elements touch. A part without a confident
     body (`Bars.min_body` pixels above `Bars.confident`) is no element but what an earlier round left behind: it
     stays (also a see-through panel fainter than that: measured, a lower bar for panels scores lower).
     Objects and text are opaque in their body, so their soft alpha is firmed (`firm`: below CLEAR nothing,
     from BODY on all of it) and they come off whole, leaving no ghost; panels keep theirs (often see-through);
  3. each element's colour is its unblending against what lies beneath, F = (C - (1 - a) B) / a;
  4. what the elements covered is filled in (`fill_beneath`): B = Navier-Stokes inpainting (OpenCV), except
     under the body of a see-through element of one flat colour F (a panel: its inner alpha low and even, its
     colour flat at its edge), where B = (C - a F) / (1 - a). `benchmarks/bench_fill.py` measures the choice;
  5. C := B, and again, until the predicted alpha is empty or the layer budget is spent. What is left is the
     opaque background. Elements that overlap are stacked in the order they came off (a later round lies
     lower); the order of the others cannot be seen in the image, and they go by the layer-order convention
     (panels, objects, text; larger lower).
Refinement (`layered.refine`) runs last, as for every method, and makes the layers add up to the input.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np

from layered.errors import InputError
from layered.limits import MAX_LAYERS
from layered.pixels import composite_over
from layered.stack import Layer, LayerStack, composite

EMPTY = 0.02  # alpha below this is nothing
OPAQUE = 0.97  # alpha at or above this hides what lies beneath
SEE_THROUGH = 0.9  # an element whose inner alpha stays below this (a panel) is unblended, not inpainted
MIN_INTERIOR = 24  # pixels: thinner elements (text strokes) are never taken for see-through ones
FLAT_SPREAD = 6.0  # levels (median absolute deviation): a see-through element more varied than this is inpainted
UNIFORM = 0.08  # ... nor are those whose inner alpha varies more than this (a soft shadow around an object)
INPAINT_RADIUS = 3


def union_alpha(alphas: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The alpha of several non-overlapping or stacked elements together: 1 - prod(1 - a)."""
    clear = np.ones(shape, np.float32)
    for alpha in alphas:
        clear *= 1.0 - alpha
    return 1.0 - clear


def fill_beneath(rgb: np.ndarray, alphas: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(what lies beneath the elements, each element's colour), H x W x 3 uint8 each, from the image and alphas."""
    import cv2
    from scipy import ndimage

    image = rgb.astype(np.float32)
    union = union_alpha(alphas, rgb.shape[:2])
    hole = ndimage.binary_dilation(union > EMPTY, iterations=1)
    inpainted = cv2.inpaint(np.ascontiguousarray(rgb), hole.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_NS)
    beneath = inpainted.astype(np.float32)
    colours = []
    for alpha in alphas:
        a = alpha[..., None]
        support = alpha > EMPTY
        colour = np.where(a > EMPTY, (image - (1.0 - a) * beneath) / np.maximum(a, EMPTY), image)
        interior = ndimage.binary_erosion(support, iterations=2)
        inner = alpha[interior]
        if inner.size >= MIN_INTERIOR and np.median(inner) < SEE_THROUGH and inner.std() < UNIFORM:
            body = (alpha >= 0.5 * float(alpha.max())) & (alpha < OPAQUE)
            edge = body & ndimage.binary_dilation(~support, iterations=3)  # where the fill is still faithful
            estimates = colour[edge]
            flat = np.median(estimates, axis=0)
            if float(np.median(np.abs(estimates - flat), axis=0).max()) > FLAT_SPREAD:  # a gradient: inpaint
                colours.append(np.clip(colour + 0.5, 0, 255).astype(np.uint8))
                continue
            under = (image - a * flat) / np.maximum(1.0 - a, 1.0 - OPAQUE)
            beneath[body] = under[body]  # its body; a soft rim is inpainted
            colour = np.broadcast_to(flat, image.shape).copy()
        colours.append(np.clip(colour + 0.5, 0, 255).astype(np.uint8))
    return np.clip(beneath + 0.5, 0, 255).astype(np.uint8), colours


# ---- the loop -----------------------------------------------------------------------------------------

KIND_NAMES = ("panel", "object", "text")  # the network's kind classes 1..3 (0: no top element)
TIER = {"panel": 1, "object": 2, "text": 3}  # the layer-order convention within a round: panels, objects, text
CLEAR, BODY = 0.1, 0.6  # an object's or text's predicted alpha: below CLEAR none of it, from BODY on all of it
MIN_PIXELS = 4  # working-size pixels: a predicted top smaller than this is empty
EDGE_REACH = 5  # working-size pixels: the soft edge of an element reaches no further from its solid part
MAX_ROUNDS = 12


@dataclasses.dataclass(frozen=True)
class Bars:
    """What counts as an element in the maps: alpha (and text box, touch) above `solid` is inside one, and an
    element has at least `min_body` working-size pixels of alpha above `confident`."""

    solid: float = 0.5
    confident: float = 0.7
    min_body: int = 48


BARS = Bars()
# An exact count that the peeling falls short of peels again with lower bars, and takes that if it found more
# (measured on 160 held-out designs at 256 px: soft IoU@0 0.699 -> 0.707, L1@0 0.097 -> 0.092).
LOW_BARS = Bars(solid=0.35, confident=0.5, min_body=16)


@dataclasses.dataclass(frozen=True)
class Element:
    """One peeled element at the working size: full-canvas RGBA uint8, its kind, the round it came off in."""

    rgba: np.ndarray
    kind: str
    round: int

    @property
    def area(self) -> float:
        return float(self.rgba[..., 3].sum()) / 255.0


def working_size(width: int, height: int, long_side: int, multiple: int = 16) -> tuple[int, int]:
    """The size the network sees: the long side `long_side`, both sides multiples of `multiple`."""
    scale = long_side / max(width, height)
    return (
        max(multiple, round(width * scale / multiple) * multiple),
        max(multiple, round(height * scale / multiple) * multiple),
    )


def predict(model, rgb: np.ndarray, removed: np.ndarray) -> dict[str, np.ndarray]:
    """The network's maps for one image (working size, H x W x 3 uint8) and its removed mask: the mean of its
    maps for the image and for its mirror image (measured: +0.02 soft IoU@0; vertical flips score lower)."""
    import torch

    param = next(model.parameters())
    x = np.concatenate([rgb.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0, removed[None]], axis=0)
    batch = np.stack([x, x[..., ::-1]])
    with torch.no_grad():
        logits = model(torch.from_numpy(batch).to(device=param.device, dtype=param.dtype)).float().cpu()
    logits[1] = logits[1].flip(-1)  # the mirror's maps, mirrored back
    prob, logits = torch.sigmoid(logits).mean(0).numpy(), logits.mean(0).numpy()
    return {"alpha": prob[0], "kind": logits[1:5], "text_box": prob[5], "touch": prob[6]}


def split_elements(maps: dict[str, np.ndarray], bars: Bars = BARS) -> list[tuple[np.ndarray, str]]:
    """The top alpha split into elements (alpha, kind): text by the box it falls in, the rest by component."""
    from scipy import ndimage

    alpha = maps["alpha"]
    solid = alpha > bars.solid
    kind = 1 + maps["kind"][1:].argmax(axis=0)  # the kind of the element at each pixel (1..3)
    text = solid & (kind == 3)
    boxes, _ = ndimage.label(maps["text_box"] > bars.solid)
    labels = np.zeros(alpha.shape, np.int32)
    text_labels = np.where(text, boxes, 0)
    labels[text_labels > 0] = text_labels[text_labels > 0]
    loose = solid & (labels == 0) & (maps["touch"] <= bars.solid)  # cut where two elements touch
    parts, count = ndimage.label(loose, structure=np.ones((3, 3)))
    offset = labels.max()
    labels[parts > 0] = parts[parts > 0] + offset
    if not labels.any():
        return []
    # every pixel of the soft top near an element (its edge, cut lines) goes to the nearest one; farther
    # soft pixels belong to no element (faint outlines of what lies beneath)
    distance, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    owner = np.where((alpha > EMPTY) & (distance <= EDGE_REACH), labels[iy, ix], 0)
    out = []
    for label in np.unique(owner[owner > 0]):
        mine = owner == label
        if (mine & (alpha > bars.confident)).sum() < bars.min_body:  # a leftover of an earlier round, not an element
            continue
        votes = np.bincount(kind[solid & mine], minlength=4)[1:]
        out.append((np.where(mine, alpha, 0.0).astype(np.float32), KIND_NAMES[int(votes.argmax())]))
    return out


def firm(alpha: np.ndarray, kind: str) -> np.ndarray:
    """An element's alpha as its kind has it: objects and text opaque in their body, the soft alpha stretched
    linearly from CLEAR (0) to BODY (1); a panel's alpha as predicted (panels are often see-through)."""
    if kind == "panel":
        return alpha
    return np.clip((alpha - CLEAR) / (BODY - CLEAR), 0.0, 1.0).astype(np.float32)


def take_top(model, rgb: np.ndarray, removed: np.ndarray, bars: Bars = BARS) -> list[tuple[np.ndarray, str]]:
    """One round's elements (firmed alpha, kind) of `rgb` (working size) given what was removed; none: stop."""
    maps = predict(model, rgb, removed)
    if (maps["alpha"] > bars.solid).sum() < MIN_PIXELS:
        return []
    return [(firm(alpha, kind), kind) for alpha, kind in split_elements(maps, bars)]


def peel(model, rgb: np.ndarray, bars: Bars = BARS) -> tuple[np.ndarray, list[Element]]:
    """Peel `rgb` (working size) until the top is empty or `MAX_LAYERS - 1` elements are off: (background, elements).

    An exact count is fitted afterwards (`fit_count`): stopping at it left true elements in the background."""
    removed = np.zeros(rgb.shape[:2], np.float32)
    elements: list[Element] = []
    for round_index in range(MAX_ROUNDS):
        if len(elements) >= MAX_LAYERS - 1:
            break
        found = take_top(model, rgb, removed, bars)
        if not found:
            break
        beneath, colours = fill_beneath(rgb, [alpha for alpha, _ in found])
        for (alpha, kind), colour in zip(found, colours, strict=True):
            rgba = np.dstack([colour, np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)])
            elements.append(Element(rgba, kind, round_index))
        removed = np.maximum(removed, union_alpha([alpha for alpha, _ in found], rgb.shape[:2]))
        rgb = beneath
    return rgb, elements


def stack_order(elements: list[Element]) -> list[Element]:
    """Bottom-first: elements that overlap as they came off (later rounds lower), the rest by the convention
    (panels, objects, text; larger lower; `layered.layer_tools.occlusion_order`)."""
    from layered.layer_tools import occlusion_order

    by_round = sorted(elements, key=lambda e: (-e.round, TIER[e.kind], -e.area))
    if not by_round:
        return []
    height, width = by_round[0].rgba.shape[:2]
    stack = LayerStack(width, height, tuple(Layer.from_canvas(e.rgba) for e in by_round))
    return [by_round[i] for i in occlusion_order(stack, [TIER[e.kind] for e in by_round])]


def decompose_peel(image: np.ndarray, model, layers: int | str = "auto") -> LayerStack:
    """Peel an RGBA image (flattened over white) into a bottom-first stack at the network's working size.

    `layers` is "auto" (what the peeling finds, at most `MAX_LAYERS`) or an exact count: the peeling runs as for
    "auto", then, when it found too few, again with lower bars (`LOW_BARS`); extra elements are merged into their
    neighbour in the stack, missing ones are split off the background by colour. Refinement to the image's own
    size is the caller's last step.
    """
    from PIL import Image

    count = None if layers == "auto" else int(layers)
    image = np.asarray(image)
    rgb = image if image.shape[2] == 3 else composite_over(image)  # over white, as the other methods
    width, height = working_size(rgb.shape[1], rgb.shape[0], int(model.config.sample_size))
    small = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))
    background, elements = peel(model, small)
    if count is not None and len(elements) + 1 < count:  # short: look again with lower bars
        second = peel(model, small, LOW_BARS)
        if len(second[1]) > len(elements):
            background, elements = second
    canvases = [np.dstack([background, np.full((height, width), 255, np.uint8)])]
    kinds = ["background"]
    for element in stack_order(elements):
        canvases.append(element.rgba)
        kinds.append(element.kind)
    if count is not None or len(canvases) > MAX_LAYERS:  # one round can bring more than the budget
        canvases, kinds = fit_count(canvases, kinds, count or MAX_LAYERS)
    named = _names(kinds)
    stack = LayerStack(
        width,
        height,
        tuple(Layer.from_canvas(c, n, kind=k) for c, n, k in zip(canvases, named, kinds, strict=True)),
    )
    return stack.replace(working_size=(width, height))


def at_size(stack: LayerStack, size: tuple[int, int]) -> LayerStack:
    """The raw (unrefined) layers resized to `size`, names and kinds kept."""
    from layered.pixels import resize_rgba

    layers = [
        Layer.from_canvas(resize_rgba(stack.render_layer(i), size), layer.name, kind=layer.kind)
        for i, layer in enumerate(stack.layers)
    ]
    return LayerStack(size[0], size[1], tuple(layers), working_size=stack.size, refined=False)


def fit_count(canvases: list[np.ndarray], kinds: list[str], count: int) -> tuple[list[np.ndarray], list[str]]:
    """Exactly `count` layers: merge the adjacent pair of least area, or split the bottom plate by colour."""
    canvases, kinds = list(canvases), list(kinds)
    while len(canvases) > count:
        areas = [float(c[..., 3].sum()) for c in canvases]
        i = min(range(len(canvases) - 1), key=lambda k: areas[k] + areas[k + 1] if k else np.inf)
        merged = composite_canvases(canvases[i : i + 2])
        canvases[i : i + 2] = [merged]
        kinds[i : i + 2] = [kinds[i]]
    while len(canvases) < count:
        split = _split_background(canvases, kinds)
        if split is None:
            break
        canvases, kinds = split
    return canvases, kinds


def composite_canvases(canvases: list[np.ndarray]) -> np.ndarray:
    """Full-canvas RGBA layers (bottom-first) flattened into one, by the one compositing rule."""
    height, width = canvases[0].shape[:2]
    return composite([Layer(c) for c in canvases], width, height)


def _split_background(canvases, kinds):
    """One more layer: the bottom plate split in two by colour (`layered.classic`). What the peeling missed lies
    mostly in the background: measured, this scores better than splitting an element into its parts."""
    from layered.classic import decompose_classic

    base = decompose_classic(canvases[0], 2)
    if len(base) < 2:
        return None
    return [base.render_layer(0), base.render_layer(1)] + canvases[1:], ["background", "panel"] + kinds[1:]


def _names(kinds: list[str]) -> list[str]:
    """ "Background", then "Panel 1", "Object 2", "Text 1"... numbered per kind, bottom-up."""
    counts: dict[str, int] = {}
    names = []
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
        names.append("Background" if kind == "background" and counts[kind] == 1 else f"{kind.title()} {counts[kind]}")
    return names


# ---- the shipped network -------------------------------------------------------------------------------

PEEL_DIR = Path(__file__).resolve().parent / "assets" / "peel"
_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def load_peel(folder: str | os.PathLike | None = None, device: str = "cpu"):
    """The `PeelNet` of `folder` (default: the shipped `layered/assets/peel`), in eval mode, loaded once per process.

    A missing or broken folder is one `InputError` that names it.
    """
    folder = Path(folder) if folder is not None else PEEL_DIR
    config = folder / "config.json"
    if not config.is_file():
        raise InputError(f"{folder}: no peel network here (no config.json): reinstall layered or give a PeelNet folder")
    key = (str(folder.resolve()), config.stat().st_mtime_ns, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            import torch

            from layered.peel_model import PeelNet

            try:
                model = PeelNet.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
            except Exception as exc:  # a truncated file, a wrong config: say which folder, not a traceback
                raise InputError(f"{folder}: not a loadable peel network ({type(exc).__name__}: {exc})") from None
            _MODELS[key] = model
        return model
