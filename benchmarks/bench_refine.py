"""Refinement speed and memory: `refine` on 8 layers at 1024^2 and 2048^2, next to the decomposition it follows.

One run, per size, on a flat design drawn here (background + 7 anti-aliased shapes, some translucent):
- classic: `decompose_classic(image, 8)`, the decomposition that refinement follows at the image's size;
- refine 1x: `refine` of the classic layers (the classic path of `layered decompose`);
- refine up: `refine` of a model-like prediction at 1/8 of the size (the true layers box-downscaled, colours
  off by up to 40 levels), the model path; beside it the plain premultiplied resize of those layers
  (`resize_rgba`, what the pipeline did before refinement) as the baseline.
Prints seconds (best of --repeat), refine / classic and refine / resize ratios, peak traced memory
(tracemalloc: numpy buffers) of each refine, and the recomposition error (max levels) after refinement.
Target (issue 13): refine <= 0.5 s at 1024^2.
Run: python benchmarks/bench_refine.py [--sizes 1024 2048] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from PIL import Image, ImageDraw

from layered.classic import decompose_classic
from layered.pixels import resize_rgba
from layered.refine import refine
from layered.stack import LayerStack

SHAPES = 7


def design(size: int, seed: int = 0) -> list[np.ndarray]:
    """Full-canvas RGBA layers bottom-first: an opaque background and SHAPES shapes (4x supersampled edges)."""
    rng = np.random.default_rng(seed)
    layers = [np.asarray(Image.new("RGBA", (size, size), (*rng.integers(0, 256, 3).tolist(), 255)))]
    big = size * 2
    for k in range(SHAPES):
        colour = (*rng.integers(0, 256, 3).tolist(), 255 if k % 3 else 160)
        shape = Image.new("RGBA", (big, big), (*colour[:3], 0))
        draw = ImageDraw.Draw(shape)
        w, h = rng.uniform(0.15, 0.45, 2) * big
        x0, y0 = rng.uniform(0, big - w), rng.uniform(0, big - h)
        if k % 2:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        layers.append(np.asarray(shape.resize((size, size), Image.Resampling.BOX)))
    return layers


def prediction(layers: list[np.ndarray], factor: int, seed: int = 1) -> LayerStack:
    """What a model working at 1/factor might return: the layers downscaled, each colour shifted."""
    rng = np.random.default_rng(seed)
    size = layers[0].shape[0] // factor
    small = []
    for pixels in layers:
        low = np.array(resize_rgba(pixels, (size, size), Image.Resampling.BOX))
        shift = rng.integers(-40, 41, 3)
        low[..., :3] = np.clip(low[..., :3].astype(int) + shift, 0, 255).astype(np.uint8)
        small.append(low)
    return LayerStack.from_images(small)


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def error_levels(stack: LayerStack, image: np.ndarray) -> int:
    return int(np.abs(stack.composite().astype(int) - image.astype(int)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--factor", type=int, default=8, help="working size = size / factor for 'refine up'")
    args = parser.parse_args()
    print(
        "size  layers  classic_s  refine1x_s  ratio  peak1x_MiB  err1x | resize_s  refineup_s  ratio  peakup_MiB  errup"
    )
    for size in args.sizes:
        layers = design(size)
        image = LayerStack.from_images(layers).composite()
        t_classic, classic = best(lambda image=image: decompose_classic(image, 8), args.repeat)
        t_1x, refined = best(lambda c=classic, image=image: refine(c, image), args.repeat)
        peak_1x = peak_mib(lambda c=classic, image=image: refine(c, image))
        small = prediction(layers, args.factor)
        t_resize, _ = best(
            lambda s=small, n=size: [resize_rgba(s.render_layer(k), (n, n)) for k in range(len(s))], args.repeat
        )
        t_up, refined_up = best(lambda s=small, image=image: refine(s, image), args.repeat)
        peak_up = peak_mib(lambda s=small, image=image: refine(s, image))
        print(
            f"{size:4d}  {len(classic):6d}  {t_classic:9.3f}  {t_1x:10.3f}  {t_1x / t_classic:5.2f}  {peak_1x:10.0f}  "
            f"{error_levels(refined, image):5d} | {t_resize:8.3f}  {t_up:10.3f}  {t_up / t_resize:5.2f}  "
            f"{peak_up:10.0f}  {error_levels(refined_up, image):5d}"
        )


if __name__ == "__main__":
    main()
