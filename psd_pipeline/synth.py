"""Synthetic graphic designs written as real layered PSD files (training data, test inputs).

Two styles. "rich" (v2, the default; `psd_pipeline.synth_rich` documents its layer-order convention): real
fonts, colour emoji, icons, photo-like cut-outs, panels, banners, shapes with gradients, outlines and shadows.
"flat" (v1, what the shipped demo model was trained on): an opaque background (solid, linear or radial
gradient, or a simple texture) and 1-5 foreground elements (rectangle, rounded rectangle, ellipse, polygon
or star, text in Pillow's bundled font), each one pixel layer, overlapping, some semi-transparent, stacked
in random order. Design k of seed s depends only on (s, k, style), so the files are the same whatever the
number of workers.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from layered.psd.writer import write_psd
from layered.stack import Layer, LayerStack

SHAPES = ("rectangle", "rounded rectangle", "ellipse", "polygon", "star", "text")
WORDS = ("SALE", "Hello", "Open", "NEW", "Coffee", "Design", "Summer", "Layers", "Join us", "Music", "50%", "Go")
STYLES = ("rich", "flat")
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down: anti-aliased edges
MIN_VISIBLE = 0.25  # each element keeps at least this share of its own area visible


def make_design(seed: int, index: int, size: int = 256, style: str = "rich") -> LayerStack:
    """Design `index` of `seed` in `style`: a LayerStack (bottom-first) whose every layer is clearly visible."""
    if style == "rich":
        from psd_pipeline.assets import require_assets
        from psd_pipeline.synth_rich import draw_rich

        require_assets()  # one clear line naming the packages, not FreeType's "cannot open resource"
        return draw_rich(seed, index, size).stack
    if style != "flat":
        raise ValueError(f"unknown synthetic design style {style!r} (one of {', '.join(STYLES)})")
    for attempt in range(100):
        rng = np.random.default_rng([seed, index, attempt])
        stack = _draw(rng, size)
        if _all_visible(stack):
            return stack
    return stack  # pragma: no cover - 100 unlucky draws in a row


def design_to_psd(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write `stack` as an 8-bit RGBA PSD with one pixel layer per layer and a stored composite, atomically."""
    return write_psd(stack, path)


def write_designs(
    out: str | os.PathLike,
    count: int,
    *,
    seed: int = 0,
    size: int = 256,
    workers: int = 1,
    png: bool = False,
    style: str = "rich",
    overwrite: bool = False,
) -> list[Path]:
    """Write design_1.psd .. design_N.psd (and design_N.png composites with `png`) into `out`.

    A file of that name is replaced only when an earlier run wrote it (or with `overwrite`); checked for every
    design before the first one is written, so a refusal writes nothing.
    """
    if style == "rich":
        from psd_pipeline.assets import require_assets

        require_assets()
    elif style not in STYLES:
        raise ValueError(f"unknown synthetic design style {style!r} (one of {', '.join(STYLES)})")
    from layered.ownership import check_replaceable

    out = Path(out)
    jobs = [_Job(out, seed, k, size, png, style) for k in range(1, count + 1)]
    for job in jobs:
        for target in _targets(job):
            check_replaceable(target, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if workers <= 1 or count < 2:
        return [_write_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_write_one, jobs, chunksize=16))


class _Job(NamedTuple):
    """Design `index` of `seed` to write into `out` (picklable, for the worker processes)."""

    out: Path
    seed: int
    index: int
    size: int
    png: bool
    style: str


def _targets(job: _Job) -> list[Path]:
    """The files design `job.index` is written to: its PSD, and its PNG composite with `png`."""
    stem = job.out / f"design_{job.index}"
    return [stem.with_suffix(".psd"), *([stem.with_suffix(".png")] if job.png else [])]


def _write_one(job: _Job) -> Path:
    stack = make_design(job.seed, job.index, job.size, job.style)
    psd, *composite = _targets(job)
    path = design_to_psd(stack, psd)
    if composite:
        from layered.ownership import save_signed_png  # signed, so that a later run may replace it

        save_signed_png(stack.composite(), composite[0])
    return path


def _draw(rng: np.random.Generator, size: int) -> LayerStack:
    layers = [Layer(_background(rng, size), 0, 0, "Background")]
    counts: dict[str, int] = {}
    for _ in range(int(rng.integers(1, 6))):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        counts[kind] = counts.get(kind, 0) + 1
        pixels, name = _element(rng, size, kind)
        layer = Layer.from_canvas(pixels, name if kind == "text" else f"{kind.capitalize()} {counts[kind]}")
        if not layer.is_empty:
            layers.append(layer)
    return LayerStack(size, size, tuple(layers))


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Opaque H x W x 4: solid, linear gradient, radial gradient or a texture (stripes, checks, noise)."""
    style = ("solid", "linear", "radial", "texture")[int(rng.integers(4))]
    a, b = _color(rng), _color(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    if style == "solid":
        t = np.zeros((size, size), np.float32)
    elif style == "linear":
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif style == "radial":
        cx, cy = rng.uniform(0.2, 0.8, 2)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        t = t / max(float(t.max()), 1e-6)
    else:
        pattern = int(rng.integers(3))
        period = float(rng.uniform(0.05, 0.2))
        if pattern == 0:
            t = ((xx + yy) / period % 2.0 < 1.0).astype(np.float32)
        elif pattern == 1:
            t = (((xx // period) + (yy // period)) % 2).astype(np.float32)
        else:
            t = rng.uniform(0.0, 1.0, (size, size)).astype(np.float32) * 0.3
    rgb = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    out = np.empty((size, size, 4), np.uint8)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def _element(rng: np.random.Generator, size: int, kind: str) -> tuple[np.ndarray, str]:
    """One foreground element on a transparent full canvas (anti-aliased coverage x colour x opacity)."""
    big = size * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    w, h = rng.uniform(0.2, 0.6, 2) * big
    cx, cy = rng.uniform(0.15, 0.85, 2) * big
    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    name = kind
    if kind == "rectangle":
        draw.rectangle(box, fill=255)
    elif kind == "rounded rectangle":
        draw.rounded_rectangle(box, radius=float(min(w, h) * rng.uniform(0.1, 0.4)), fill=255)
    elif kind == "ellipse":
        draw.ellipse(box, fill=255)
    elif kind in ("polygon", "star"):
        sides = int(rng.integers(3, 9))
        radius = min(w, h) / 2
        turn = rng.uniform(0, 2 * math.pi)
        points = []
        steps = sides * 2 if kind == "star" else sides
        for i in range(steps):
            r = radius * (0.45 if kind == "star" and i % 2 else 1.0)
            angle = turn + 2 * math.pi * i / steps
            points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
        draw.polygon(points, fill=255)
    else:
        name = WORDS[int(rng.integers(len(WORDS)))]
        font = ImageFont.load_default(size=int(big * rng.uniform(0.08, 0.2)))
        left, top, right, bottom = draw.textbbox((0, 0), name, font=font)
        x = rng.uniform(0, max(big - (right - left), 1)) - left
        y = rng.uniform(0, max(big - (bottom - top), 1)) - top
        draw.text((x, y), name, font=font, fill=255)
    coverage = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    opacity = 1.0 if rng.uniform() < 0.6 else float(rng.uniform(0.4, 0.9))
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., :3] = _color(rng).astype(np.uint8)
    pixels[..., 3] = np.clip(coverage * opacity * 255.0 + 0.5, 0, 255).astype(np.uint8)
    pixels[pixels[..., 3] == 0] = 0
    return pixels, name


def _all_visible(stack: LayerStack) -> bool:
    """Every foreground layer shows at least MIN_VISIBLE of its own alpha through the layers above."""
    from psd_pipeline.curate import visible_area

    areas = visible_area(stack)
    for layer, area in zip(stack.layers[1:], areas[1:], strict=True):
        own = float(layer.pixels[..., 3].sum()) / 255.0
        if own <= 0 or area < MIN_VISIBLE * own:
            return False
    return True
