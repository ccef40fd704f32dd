"""Compositing speed: our `composite` vs a PIL `alpha_composite` chain, same layers, same run.

8 layers on a 2048 x 2048 canvas, partial alpha, offsets inside and partly outside the canvas.
Prints seconds per composite (best of N), the ratio ours / PIL, and peak memory of each.
Run: python benchmarks/bench_composite.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from PIL import Image

from layered.stack import Layer, composite

CANVAS = 2048


def make_layers(rng: np.random.Generator, count: int = 8) -> list[Layer]:
    """Shapes with soft edges: an elliptical alpha mask inside a random box, some off-canvas."""
    layers = []
    for i in range(count):
        w, h = (int(v) for v in rng.integers(600, CANVAS, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        alpha = np.clip((1.0 - r) * 8.0, 0.0, 1.0) * rng.uniform(0.5, 1.0)
        pixels = np.empty((h, w, 4), np.uint8)
        pixels[..., :3] = rng.integers(0, 256, 3, dtype=np.uint8)
        pixels[..., 3] = (alpha * 255).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(-w // 3, CANVAS - w // 2, 2))
        layers.append(Layer(pixels, x, y, f"shape {i}", opacity=float(rng.choice([1.0, 0.7]))))
    return layers


def pil_chain(layers: list[Layer]) -> Image.Image:
    """The baseline: paste each layer on a full transparent canvas, then Image.alpha_composite."""
    out = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    for layer in layers:
        pixels = layer.pixels
        if layer.opacity < 1.0:
            pixels = pixels.copy()
            pixels[..., 3] = (pixels[..., 3] * layer.opacity + 0.5).astype(np.uint8)
        full = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
        full.paste(Image.fromarray(pixels), (layer.x, layer.y))
        out = Image.alpha_composite(out, full)
    return out


def measure(fn, repeat: int) -> tuple[float, float]:
    """Best wall time over `repeat` runs and the peak traced allocation (MiB) of one run."""
    fn()  # warm up
    best = min(_timed(fn) for _ in range(repeat))
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    layers = make_layers(np.random.default_rng(0))
    ours, ours_mem = measure(lambda: composite(layers, CANVAS, CANVAS), args.repeat)
    pil, pil_mem = measure(lambda: pil_chain(layers), args.repeat)
    diff = np.abs(composite(layers, CANVAS, CANVAS).astype(int) - np.asarray(pil_chain(layers)).astype(int))
    print(f"8 layers, {CANVAS}x{CANVAS}, best of {args.repeat}")
    print(f"  layered.composite : {ours * 1000:8.1f} ms   peak {ours_mem:7.1f} MiB")
    print(f"  PIL chain         : {pil * 1000:8.1f} ms   peak {pil_mem:7.1f} MiB")
    print(f"  ratio ours / PIL  : {ours / pil:8.2f}  (< 1 is faster)")
    print(f"  max |diff| alpha  : {diff[..., 3].max()} / 255")


if __name__ == "__main__":
    main()
