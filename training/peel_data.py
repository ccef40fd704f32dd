"""Peel training pairs: every design of N layers gives its peel rounds, each (image, removed) -> top elements.

The rounds are the ones inference makes: the top set is every layer that nothing above it overlaps; the next
image is what `layered.peel.fill_beneath` makes of the current one with the true alphas (or, sometimes, the
exact composite of the layers left), and the last round (the background alone) has an empty target, which
teaches `layers="auto"` to stop. Designs come from `psd_pipeline.synth_rich` (every layer's kind is known),
drawn on the fly: a sample is a pure function of (seed, step, position), so a resumed run sees the same batches.
Real pictures (`data.synth.photos`, a folder of images such as Debian's gnome-backgrounds) replace some
backgrounds and the pixels of photo cut-outs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layered.peel import EMPTY, fill_beneath, union_alpha
from layered.pixels import resize_rgba
from layered.stack import Layer, composite

# synth_rich's kinds -> the peel network's kind classes (1..3; 0 is "no top element here")
KIND_CLASS = {"panel": 1, "banner": 1, "button": 1, "shape": 2, "emoji": 2, "icon": 2, "photo": 2, "text": 3}
OVERLAP = 0.05  # alphas that meet above this make the lower layer not a top one
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class SynthOptions:
    """What designs to draw: `seed`, canvas sizes drawn at (then resized to the working `size`), pictures."""

    seed: int = 0
    size: int = 128
    draw_sizes: tuple[int, ...] = (128, 192, 256)
    photos: str | None = None
    photo_background: float = 0.3  # share of backgrounds replaced by a real picture
    exact_next: float = 0.15  # share of rounds whose image is the exact composite instead of the filled one
    imperfect_next: float = 0.0  # share of filled rounds whose removal is imperfect, as a trained network's is
    teacher: str | None = None  # a PeelNet folder whose own removals make some rounds' next image (on-policy)
    on_policy_next: float = 0.0  # share of filled rounds removed by the teacher through the loop's own steps


def load_photos(folder: str | None, max_side: int = 512) -> list[np.ndarray]:
    """The pictures of `folder` (RGB uint8, downscaled to at most `max_side`); none when not given or absent."""
    from PIL import Image

    if not folder or not Path(folder).is_dir():
        return []
    out = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() in PHOTO_SUFFIXES:
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.thumbnail((max_side, max_side))
                out.append(np.asarray(image))
    return out


def _crop(photo: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random crop of `photo`, resized to height x width (RGB uint8)."""
    from PIL import Image

    side = int(rng.integers(min(photo.shape[:2]) // 3, min(photo.shape[:2]) + 1))
    y = int(rng.integers(0, photo.shape[0] - side + 1))
    x = int(rng.integers(0, photo.shape[1] - side + 1))
    patch = Image.fromarray(photo[y : y + side, x : x + side]).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(patch)


def design_layers(index: int, options: SynthOptions, photos: list[np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """Design `index`: its layers as full-canvas float RGBA in [0, 1] at the working size, and their kinds."""
    from psd_pipeline.synth_rich import draw_rich

    rng = np.random.default_rng([options.seed, index, 7])
    drawn = int(options.draw_sizes[int(rng.integers(len(options.draw_sizes)))])
    design = draw_rich(options.seed, index, drawn)
    kinds = [kind.split(":", 1)[0] for kind in design.kinds]
    layers = list(design.stack.layers)
    if photos:
        layers = [_with_photo(layer, kind, rng, photos, options) for layer, kind in zip(layers, kinds, strict=True)]
    size = design.stack.width
    canvases = [composite([layer], size, size) for layer in layers]
    if drawn != options.size:
        canvases = [resize_rgba(c, (options.size, options.size)) for c in canvases]
    return [c.astype(np.float32) / 255.0 for c in canvases], kinds


def _with_photo(layer: Layer, kind: str, rng: np.random.Generator, photos, options: SynthOptions) -> Layer:
    """The layer with its colour replaced by a real picture: some backgrounds, every photo cut-out."""
    if kind == "background" and rng.uniform() >= options.photo_background:
        return layer
    if kind not in ("background", "photo"):
        return layer
    rgb = _crop(photos[int(rng.integers(len(photos)))], rng, layer.height, layer.width)
    return layer.replace(pixels=np.concatenate([rgb, layer.pixels[..., 3:]], axis=2))


def top_set(alphas: list[np.ndarray], left: list[int]) -> list[int]:
    """The layers of `left` (indices, bottom-first) that no layer above them in `left` overlaps."""
    solid = {i: alphas[i] > OVERLAP for i in left}
    return [j for j in left if not any((solid[j] & solid[i]).any() for i in left if i > j)]


def targets(alphas: list[np.ndarray], kinds: list[str], top: list[int], shape: tuple[int, int]) -> dict:
    """The training targets of one round: alpha (soft), kind class, text boxes, touching pixels."""
    from scipy import ndimage

    height, width = shape
    kind = np.zeros(shape, np.int64)
    text_box = np.zeros(shape, np.float32)
    touch = np.zeros(shape, np.float32)
    solid = [alphas[j] > 0.5 for j in top]
    for j, mask in zip(top, solid, strict=True):
        kind[mask] = KIND_CLASS.get(kinds[j], 2)
        if kinds[j] == "text" and (alphas[j] > EMPTY).any():
            ys, xs = np.nonzero(alphas[j] > EMPTY)
            text_box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1.0
    for a, mask in enumerate(solid):
        others = np.zeros(shape, bool)
        for b, other in enumerate(solid):
            if b != a:
                others |= other
        touch[mask & ndimage.binary_dilation(others, iterations=1)] = 1.0
    alpha = union_alpha([alphas[j] for j in top], (height, width))
    return {"alpha": alpha, "kind": kind, "text_box": text_box, "touch": touch}


def peel_rounds(
    layers: list[np.ndarray],
    kinds: list[str],
    rng: np.random.Generator,
    exact_next: float,
    imperfect_next: float = 0.0,
    *,
    remove=None,
    on_policy_next: float = 0.0,
):
    """Every round of peeling a design (float RGBA layers): dicts of image (H x W x 3 uint8), removed, targets.

    With `imperfect_next`, that share of filled rounds removes the top as a trained network does (`imperfect`):
    the next image keeps what was left behind, and its targets are still the true layers left, so the network
    learns to peel on through its own leftovers instead of taking them for new elements.
    With `remove` (image, removed -> the alphas a network takes off, as `layered.peel.take_top` does), that
    share `on_policy_next` of filled rounds is that network's own removal (`taken_by`): its mistakes, merges
    included, are what the next rounds see.
    """
    alphas = [layer[..., 3] for layer in layers]
    rgb = _flatten(layers, list(range(len(layers))))
    left = list(range(1, len(layers)))
    removed = np.zeros(rgb.shape[:2], np.float32)
    rounds = []
    on_policy = 0  # rounds removed by `remove`; their layers are no longer the true ones, so no exact round follows
    while True:
        top = top_set(alphas, left)
        rounds.append({"image": rgb, "removed": removed.copy(), **targets(alphas, kinds, top, rgb.shape[:2])})
        if not top:
            return rounds
        taken = [alphas[j] for j in top]
        found = []
        if remove is not None and on_policy < len(layers) and rng.uniform() < on_policy_next:
            found = remove(rgb, removed)
        if found:
            on_policy += 1
            alphas, left = taken_by(found, alphas, left)
            taken = found
            rgb, _ = fill_beneath(rgb, taken)
        elif not on_policy and rng.uniform() < exact_next:
            left = [i for i in left if i not in top]
            rgb = _flatten(layers, [0, *left])
        else:
            if imperfect_next and rng.uniform() < imperfect_next:
                taken, missed = imperfect(taken, rng)
                top = [j for j, miss in zip(top, missed, strict=True) if not miss]
                taken = [a for a, miss in zip(taken, missed, strict=True) if not miss]
            left = [i for i in left if i not in top]
            rgb, _ = fill_beneath(rgb, taken)
        removed = np.maximum(removed, union_alpha(taken, rgb.shape[:2]))


def taken_by(found: list[np.ndarray], alphas: list[np.ndarray], left: list[int]) -> tuple[list[np.ndarray], list[int]]:
    """The true layers after a network took `found` off: a layer at least half of whose visible alpha it took is
    gone; the others lose what of theirs was visible there (a part of them the network took with another)."""
    took = union_alpha(found, alphas[0].shape)
    alphas = list(alphas)
    clear_above = np.ones(alphas[0].shape, np.float32)  # how much of a layer shows through those above it
    gone = set()
    for j in reversed(left):
        alpha = alphas[j]
        visible = alpha * clear_above
        if visible.sum() > 0 and float((visible * took).sum()) >= 0.5 * float(visible.sum()):
            gone.add(j)
        else:
            alphas[j] = (alpha * (1.0 - took * clear_above)).astype(np.float32)
        clear_above = clear_above * (1.0 - alpha)
    return alphas, [j for j in left if j not in gone]


def imperfect(alphas: list[np.ndarray], rng: np.random.Generator) -> tuple[list[np.ndarray], list[bool]]:
    """The top alphas as an imperfect network removes them: each faded, eroded or grown by a pixel, or missed
    (left for the next round; never all of them). Returns (the alphas removed, which ones were missed)."""
    from scipy import ndimage

    hows = rng.integers(4, size=len(alphas))
    missed = [bool(how == 3) for how in hows]
    if all(missed):
        missed[int(rng.integers(len(alphas)))] = False
    out = []
    for alpha, how in zip(alphas, hows, strict=True):
        if how == 0:
            alpha = alpha * np.float32(rng.uniform(0.6, 0.95))
        elif how == 1:
            alpha = ndimage.grey_erosion(alpha, size=(3, 3))
        elif how == 2:
            alpha = ndimage.grey_dilation(alpha, size=(3, 3))
        out.append(alpha.astype(np.float32))
    return out, missed


def _flatten(layers: list[np.ndarray], keep: list[int]) -> np.ndarray:
    """The opaque composite of the `keep` layers (float RGBA in [0, 1], the first one opaque), RGB uint8."""
    out = np.zeros(layers[0].shape[:2] + (3,), np.float32)
    for i in keep:
        a = layers[i][..., 3:]
        out = a * layers[i][..., :3] + (1.0 - a) * out
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
