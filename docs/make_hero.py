"""Draw docs/hero.png, the README's first picture: an input, the layers `layered decompose` finds, and an edit.

Everything in it is made by the project: the input is `examples/design_1.png` (from `layered psd synth`),
the layers come from `layered decompose`'s default method (or `--method classic`, `--method model --model demo`),
the edit from `layered.edits`.

    python docs/make_hero.py [--method peel|classic|model] [--model demo] [--output docs/hero.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from layered.decompose import DEFAULT_METHOD, METHODS

ROOT = Path(__file__).resolve().parents[1]
TILE, PAD, LABEL = 160, 12, 22


def on_checker(rgba: np.ndarray) -> Image.Image:
    """RGBA over a light checkerboard, so that transparency shows."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    cell = max(4, min(h, w) // 16)
    board = np.where((yy // cell + xx // cell) % 2 == 0, 255.0, 214.0)[..., None]
    alpha = rgba[..., 3:] / 255.0
    return Image.fromarray((rgba[..., :3] * alpha + board * (1 - alpha)).round().astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--input", default=str(ROOT / "examples" / "design_1.png"))
    parser.add_argument("--output", default=str(ROOT / "docs" / "hero.png"))
    args = parser.parse_args()

    from layered import edits
    from layered.decompose import Settings, decomposer

    image = Image.open(args.input)
    settings = Settings(method=args.method, model=args.model, layers="auto")
    stack = decomposer(settings)(np.asarray(image.convert("RGBA")))
    coverage = [stack.render_layer(i)[..., 3].mean() / 255 for i in range(len(stack))]
    objects = [i for i in range(1, len(stack)) if coverage[i] < 0.4] or list(range(1, len(stack)))
    top = max(objects, key=lambda i: coverage[i])  # the largest layer that is an object, not a backdrop
    edited = edits.recolor(edits.move(stack, top, dx=stack.size[0] // 6, dy=0), top, hue=150)

    tiles = [("input", np.asarray(image.convert("RGBA")))]
    tiles += [(f"{i}: {layer.name or 'layer'}", stack.render_layer(i)) for i, layer in enumerate(stack.layers)]
    tiles += [(f"edit: layer {top} moved + recoloured", edited.composite())]
    canvas = Image.new("RGB", (PAD + len(tiles) * (TILE + PAD), TILE + LABEL + 2 * PAD), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (label, rgba) in enumerate(tiles):
        x = PAD + k * (TILE + PAD)
        canvas.paste(on_checker(rgba).resize((TILE, TILE), Image.LANCZOS), (x, PAD))
        draw.text((x, PAD + TILE + 4), label, fill=(40, 40, 40))
    canvas.save(args.output)
    print(f"wrote {args.output}: {len(stack)} layers")


if __name__ == "__main__":
    main()
