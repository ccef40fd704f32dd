"""The elements of a rich synthetic design, each drawn on its own transparent crop (one future layer).

Shapes with gradient fills, outlines and drop shadows (the shadow is part of the element), colour emoji,
icons, soft-edged cut-outs of photo-like images, semi-transparent panels, banners and buttons (their label is
a separate text element placed on top), and text in real fonts. Sizes are relative to the canvas side.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from layered.pixels import alpha_bbox, resize_rgba
from layered.stack import Layer, composite
from psd_pipeline import assets
from psd_pipeline.synth_textures import photo_like

SUPERSAMPLE = 4  # masks are drawn at 4x and box-filtered down: anti-aliased edges
SHAPES = ("Rectangle", "Rounded rectangle", "Ellipse", "Polygon", "Star")
PHRASES = (
    "SALE", "Hello", "Open", "NEW", "Coffee", "Design", "Summer", "Layers", "Join us", "Music", "50% off",
    "Big Sale", "Grand Opening", "Free shipping", "Summer Party", "Live music", "Fresh & tasty", "Book now",
    "New collection", "Workshop", "Save 30%", "Coffee time", "Best seller", "Weekend", "Limited offer",
    "Thank you", "Welcome", "Happy Birthday", "Open daily", "Tickets", "Festival", "Spring", "Bakery",
    "Since 1998", "Today only", "Yoga class", "Menu", "Garden", "Travel", "Night Market", "Pizza", "Studio",
)  # fmt: skip
LABELS = ("Shop now", "Learn more", "Sign up", "Buy", "Order now", "Get started", "Download", "SALE", "-50%", "Free")


@dataclasses.dataclass
class Element:
    """An element's pixels (RGBA cropped to its alpha box), kind, layer name, and an optional attached label."""

    pixels: np.ndarray
    kind: str
    name: str
    label: tuple[Element, int, int] | None = None  # (label, dx, dy) from this element's top-left

    @property
    def area(self) -> float:
        return float(self.pixels[..., 3].sum()) / 255.0


def colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def contrasting(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour readable on `rgb`: light on dark, dark on light."""
    light = float(rgb @ np.array([0.299, 0.587, 0.114])) > 140
    base = rng.uniform(0, 60, 3) if light else rng.uniform(200, 256, 3)
    return base.astype(np.float32)


def gradient(rng: np.random.Generator, height: int, width: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H x W x 3 float32: a linear ramp from `a` to `b` at a random angle."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return a * (1 - t[..., None]) + b * t[..., None]


def fill(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A flat colour (40%) or a two-colour gradient (60%), H x W x 3 float32."""
    a = colour(rng)
    if rng.uniform() < 0.4:
        return np.broadcast_to(a, (height, width, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 70, 3), 0, 255).astype(np.float32)
    return gradient(rng, height, width, a, b)


def rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 RGBA from float RGB (0-255) and coverage (0-1); fully transparent pixels are zeroed."""
    out = np.zeros((*alpha.shape, 4), np.uint8)
    out[..., :3] = np.clip(np.broadcast_to(rgb, (*alpha.shape, 3)) + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[out[..., 3] == 0] = 0
    return out


def tight(pixels: np.ndarray) -> np.ndarray:
    box = alpha_bbox(pixels)
    if box is None:
        return np.zeros((1, 1, 4), np.uint8)
    left, top, right, bottom = box
    return np.ascontiguousarray(pixels[top:bottom, left:right])


def fit(pixels: np.ndarray, side: int) -> np.ndarray:
    """Shrink (premultiplied) so that neither side exceeds `side`."""
    h, w = pixels.shape[:2]
    if max(h, w) <= side:
        return pixels
    scale = side / max(h, w)
    return tight(resize_rgba(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX))


def with_shadow(pixels: np.ndarray, rng: np.random.Generator, canvas: int) -> tuple[np.ndarray, int, int]:
    """The element over its own soft drop shadow; returns (pixels, dx, dy), the element's offset inside them."""
    blur = max(1.0, canvas * rng.uniform(0.006, 0.02))
    off = max(1, round(canvas * rng.uniform(0.008, 0.03)))
    angle = rng.uniform(0.2, 0.8) * math.pi  # light from above: the shadow falls down
    sx, sy = round(off * math.cos(angle)), round(off * math.sin(angle))
    pad = int(math.ceil(blur * 3)) + off
    h, w = pixels.shape[:2]
    big_h, big_w = h + 2 * pad, w + 2 * pad
    alpha = Image.new("L", (big_w, big_h), 0)
    alpha.paste(Image.fromarray(np.ascontiguousarray(pixels[..., 3])), (pad + sx, pad + sy))
    shade = np.asarray(alpha.filter(ImageFilter.GaussianBlur(blur)), np.float32) / 255.0
    shadow = rgba(rng.uniform(0, 50, 3), shade * rng.uniform(0.35, 0.7))
    layers = [Layer(shadow, 0, 0), Layer(np.asarray(pixels), pad, pad)]
    merged = composite(layers, big_w, big_h)
    box = alpha_bbox(merged) or (0, 0, big_w, big_h)
    return np.ascontiguousarray(merged[box[1] : box[3], box[0] : box[2]]), pad - box[0], pad - box[1]


def shape_masks(rng: np.random.Generator, kind: str, w: int, h: int, stroke: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill, outline) coverage of a shape filling w x h, anti-aliased; outline is zero when stroke is 0."""
    s = SUPERSAMPLE
    box = [stroke * s / 2, stroke * s / 2, w * s - 1 - stroke * s / 2, h * s - 1 - stroke * s / 2]
    points = _polygon(rng, kind, box) if kind in ("Polygon", "Star") else None
    masks = []
    for style in ({"fill": 255}, {"outline": 255, "width": stroke * s}):
        if "outline" in style and not stroke:
            masks.append(np.zeros((h, w), np.float32))
            continue
        image = Image.new("L", (w * s, h * s), 0)
        draw = ImageDraw.Draw(image)
        if kind == "Rectangle":
            draw.rectangle(box, **style)
        elif kind == "Rounded rectangle":
            draw.rounded_rectangle(box, radius=min(w, h) * s * 0.25, **style)
        elif kind == "Ellipse":
            draw.ellipse(box, **style)
        else:
            draw.polygon(points, **style)
        masks.append(np.asarray(image.resize((w, h), Image.Resampling.BOX), np.float32) / 255.0)
    return masks[0], masks[1]


def _polygon(rng: np.random.Generator, kind: str, box: list[float]) -> list[tuple[float, float]]:
    """A regular polygon (3-8 sides) or star (5-8 points) inscribed in `box`, randomly turned."""
    sides = int(rng.integers(3, 9)) if kind == "Polygon" else int(rng.integers(5, 9))
    turn = rng.uniform(0, 2 * math.pi)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    steps = sides * 2 if kind == "Star" else sides
    inner = rng.uniform(0.4, 0.6)
    points = []
    for i in range(steps):
        r = inner if kind == "Star" and i % 2 else 1.0
        angle = turn + 2 * math.pi * i / steps
        points.append((cx + rx * r * math.cos(angle), cy + ry * r * math.sin(angle)))
    return points


def shape(rng: np.random.Generator, canvas: int) -> Element:
    """A shape with a flat or gradient fill, maybe an outline, maybe a drop shadow."""
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    w, h = (np.maximum(4, rng.uniform(0.15, 0.45, 2) * canvas)).astype(int)
    if kind in ("Ellipse", "Polygon", "Star") and rng.uniform() < 0.5:
        h = w
    stroke = max(1, round(canvas * rng.uniform(0.008, 0.025))) if rng.uniform() < 0.4 else 0
    inside, outline = shape_masks(rng, kind, int(w), int(h), stroke)
    rgb = fill(rng, int(h), int(w))
    if stroke:
        edge = contrasting(rgb.reshape(-1, 3).mean(0), rng)
        alpha = np.maximum(inside, outline)
        share = np.divide(outline, alpha, out=np.zeros_like(alpha), where=alpha > 0)[..., None]
        rgb = rgb * (1 - share) + edge * share
    else:
        alpha = inside
    pixels = tight(rgba(rgb, alpha))
    if rng.uniform() < 0.4:
        pixels = with_shadow(pixels, rng, canvas)[0]
    return Element(pixels, "shape", kind)


def emoji(rng: np.random.Generator, canvas: int) -> Element:
    """A colour emoji (Noto Color Emoji's 109 px bitmap, rescaled premultiplied), maybe with a shadow."""
    char = assets.EMOJI[int(rng.integers(len(assets.EMOJI)))]
    bitmap = np.asarray(assets.emoji_bitmap(char))
    side = max(6, round(canvas * rng.uniform(0.14, 0.34)))
    h, w = bitmap.shape[:2]
    scale = side / max(h, w)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    pixels = tight(resize_rgba(bitmap, (max(1, round(w * scale)), max(1, round(h * scale))), resample))
    if rng.uniform() < 0.3:
        pixels = with_shadow(pixels, rng, canvas)[0]
    return Element(pixels, "emoji", "Emoji")


def icon(rng: np.random.Generator, canvas: int) -> Element:
    """A Font Awesome icon: on a coloured badge (circle or rounded square) or with a gradient fill."""
    char = assets.ICONS[int(rng.integers(len(assets.ICONS)))]
    side = max(8, round(canvas * rng.uniform(0.12, 0.3)))
    badge = rng.uniform() < 0.5
    glyph_px = round(side * (0.6 if badge else 1.0)) * SUPERSAMPLE
    face = assets.font(assets.ICON_FONT, max(4, glyph_px))
    left, top, right, bottom = face.getbbox(char)
    gw, gh = max(1, right - left), max(1, bottom - top)
    if badge:
        big = side * SUPERSAMPLE
        mask = Image.new("L", (big, big), 0)
        ImageDraw.Draw(mask).text(((big - gw) / 2 - left, (big - gh) / 2 - top), char, font=face, fill=255)
        glyph = np.asarray(mask.resize((side, side), Image.Resampling.BOX), np.float32) / 255.0
        plate = shape_masks(rng, "Ellipse" if rng.uniform() < 0.5 else "Rounded rectangle", side, side, 0)[0]
        base = fill(rng, side, side)
        ink = contrasting(base.reshape(-1, 3).mean(0), rng)
        rgb = base * (1 - glyph[..., None]) + ink * glyph[..., None]
        pixels = tight(rgba(rgb, plate))
    else:
        mask = Image.new("L", (gw + 2, gh + 2), 0)
        ImageDraw.Draw(mask).text((1 - left, 1 - top), char, font=face, fill=255)
        w, h = max(1, round((gw + 2) / SUPERSAMPLE)), max(1, round((gh + 2) / SUPERSAMPLE))
        glyph = np.asarray(mask.resize((w, h), Image.Resampling.BOX), np.float32) / 255.0
        a = colour(rng)
        rgb = gradient(rng, h, w, a, np.clip(a + rng.normal(0, 90, 3), 0, 255))
        pixels = tight(rgba(rgb, glyph))
    if rng.uniform() < 0.3:
        pixels = with_shadow(pixels, rng, canvas)[0]
    return Element(pixels, "icon", "Icon")


def photo(rng: np.random.Generator, canvas: int) -> Element:
    """A cut-out of a procedural photo-like image with a soft (blurred) alpha edge."""
    w, h = (np.maximum(6, rng.uniform(0.22, 0.5, 2) * canvas)).astype(int)
    w, h = int(w), int(h)
    image = photo_like(rng, h, w)
    feather = max(1.0, min(w, h) * rng.uniform(0.03, 0.08))
    pad = feather * 2
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    box = [pad, pad, w - 1 - pad, h - 1 - pad]
    if rng.uniform() < 0.5:
        draw.ellipse(box, fill=255)
    else:
        cx, cy, rx, ry = w / 2, h / 2, w / 2 - pad, h / 2 - pad
        count = int(rng.integers(7, 13))
        radii = rng.uniform(0.7, 1.0, count)
        angles = np.sort(rng.uniform(0, 2 * math.pi, count))
        draw.polygon(
            [(cx + rx * r * math.cos(t), cy + ry * r * math.sin(t)) for r, t in zip(radii, angles, strict=True)],
            fill=255,
        )
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(feather)), np.float32) / 255.0
    pixels = tight(rgba(image.astype(np.float32), alpha))
    if rng.uniform() < 0.3:
        pixels = with_shadow(pixels, rng, canvas)[0]
    return Element(pixels, "photo", "Photo")


def panel(rng: np.random.Generator, canvas: int) -> Element:
    """A large semi-transparent (rounded) rectangle, flat or gradient, maybe outlined."""
    w, h = (np.maximum(8, rng.uniform(0.35, 0.9, 2) * canvas)).astype(int)
    kind = "Rounded rectangle" if rng.uniform() < 0.6 else "Rectangle"
    stroke = max(1, round(canvas * 0.01)) if rng.uniform() < 0.25 else 0
    inside, outline = shape_masks(rng, kind, int(w), int(h), stroke)
    opacity = rng.uniform(0.35, 0.8)
    rgb = fill(rng, int(h), int(w))
    alpha = np.maximum(inside * opacity, outline)
    if stroke:
        share = np.divide(outline, alpha, out=np.zeros_like(alpha), where=alpha > 0)[..., None]
        rgb = rgb * (1 - share) + contrasting(rgb.reshape(-1, 3).mean(0), rng) * share
    return Element(tight(rgba(rgb, alpha)), "panel", "Panel")


def banner(rng: np.random.Generator, canvas: int) -> Element:
    """A ribbon, strip or button with a text label centred on it (the label is its own element)."""
    kind = ("banner", "button")[int(rng.integers(2))]
    label_text = LABELS[int(rng.integers(len(LABELS)))] if kind == "button" else _phrase(rng, 1)
    base = colour(rng)
    ink = contrasting(base, rng)
    label = text_element(rng, canvas, label_text, size=rng.uniform(0.06, 0.1), ink=ink, plain=True)
    lh, lw = label.pixels.shape[:2]
    pad_y = max(2, round(lh * rng.uniform(0.35, 0.7)))
    pad_x = max(3, round(lh * rng.uniform(0.6, 1.2)))
    h = lh + 2 * pad_y
    strip = kind == "banner" and rng.uniform() < 0.4
    w = canvas if strip else min(canvas, lw + 2 * pad_x)
    stroke = max(1, round(canvas * 0.008)) if kind == "button" and rng.uniform() < 0.4 else 0
    shape_kind = "Rounded rectangle" if kind == "button" else "Rectangle"
    inside, outline = shape_masks(rng, shape_kind, w, h, stroke)
    if kind == "banner" and not strip:  # ribbon: notched ends
        notch = Image.new("L", (w, h), 255)
        d = max(2, h // 3)
        ImageDraw.Draw(notch).polygon([(0, 0), (d, h / 2), (0, h - 1)], fill=0)
        ImageDraw.Draw(notch).polygon([(w - 1, 0), (w - 1 - d, h / 2), (w - 1, h - 1)], fill=0)
        inside = inside * (np.asarray(notch, np.float32) / 255.0)
    rgb = gradient(rng, h, w, base, np.clip(base + rng.normal(0, 50, 3), 0, 255)) if rng.uniform() < 0.6 else base
    alpha = np.maximum(inside, outline)
    if stroke:
        share = np.divide(outline, alpha, out=np.zeros_like(alpha), where=alpha > 0)[..., None]
        rgb = rgb * (1 - share) + ink * share
    pixels = rgba(rgb, alpha)
    dx, dy = 0, 0
    if kind == "button" and rng.uniform() < 0.4:
        pixels, dx, dy = with_shadow(pixels, rng, canvas)
    label_x = dx + (w - lw) // 2
    label_y = dy + (h - lh) // 2
    return Element(pixels, kind, kind.capitalize(), (label, label_x, label_y))


def text_element(
    rng: np.random.Generator,
    canvas: int,
    content: str | None = None,
    *,
    size: float | None = None,
    ink: np.ndarray | None = None,
    plain: bool = False,
) -> Element:
    """Text in a real font (family, weight, size, colour; one or two lines), maybe outlined or shadowed."""
    family = list(assets.TEXT_FONTS)[int(rng.integers(len(assets.TEXT_FONTS)))]
    weights = assets.TEXT_FONTS[family]
    _, path = weights[int(rng.integers(len(weights)))]
    content = content if content is not None else _phrase(rng, 2 if rng.uniform() < 0.35 else 1)
    px = max(8, round(canvas * (size if size is not None else rng.uniform(0.07, 0.16))))
    ink = ink if ink is not None else colour(rng)
    stroke = 0 if plain or rng.uniform() < 0.75 else max(1, round(px * 0.06))
    align = ("left", "center", "right")[int(rng.integers(3))]
    for _ in range(4):  # shrink until it fits the canvas with a margin
        face = assets.font(path, px)
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        box = probe.multiline_textbbox((0, 0), content, font=face, align=align, stroke_width=stroke)
        box = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
        width, height = box[2] - box[0], box[3] - box[1]
        if width <= canvas * 0.92 and height <= canvas * 0.6 or px <= 8:
            break
        px = max(8, int(px * min(canvas * 0.9 / max(width, 1), canvas * 0.58 / max(height, 1))))
    size_wh = (width + 2, height + 2)
    where = (1 - box[0], 1 - box[1])
    masks = []
    for sw in (stroke, 0):
        image = Image.new("L", size_wh, 0)
        ImageDraw.Draw(image).multiline_text(
            where, content, font=face, fill=255, align=align, stroke_width=sw, stroke_fill=255
        )
        masks.append(np.asarray(image, np.float32) / 255.0)
    full, inner = masks
    rgb = np.broadcast_to(ink, (*full.shape, 3)).astype(np.float32)
    if stroke:
        share = np.divide(inner, full, out=np.zeros_like(full), where=full > 0)[..., None]
        rgb = contrasting(ink, rng) * (1 - share) + ink * share
    pixels = fit(tight(rgba(rgb, full)), canvas)
    if not plain and rng.uniform() < 0.2:
        pixels = with_shadow(pixels, rng, canvas)[0]
    return Element(fit(pixels, canvas), "text", content.replace("\n", " "))


def _phrase(rng: np.random.Generator, lines: int) -> str:
    picks = rng.choice(len(PHRASES), lines, replace=False)
    return "\n".join(PHRASES[int(i)] for i in picks)
