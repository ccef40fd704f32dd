"""Classic decomposer speed and memory: `decompose_classic` vs a naive posterisation baseline, same images, one run.

The baseline is the obvious "fast start": Pillow's median-cut `quantize` to the same number of colours and
one hard-edged layer per colour (no edges, translucency, order or background fill). Both are timed at
256 px (a synthetic flat design drawn here) and on the real illustrations in ../shared/images (1328 px and
1664 x 928). Prints seconds per image (best of N), the ratio ours / baseline, peak traced memory of ours,
and the recomposition PSNR of both (how faithfully the layers rebuild the input).
With --layerd N it also scores N random flat designs (seeded; background + 1-4 shapes, some overlapping,
some translucent) with the LayerD protocol (`layered.metrics`) at merge 0 and 2: ours with the true layer
count, ours with "auto", and the one-opaque-layer baseline.
Run: python benchmarks/bench_classic.py [--repeat 3] [--layerd 100 --size 128]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from layered import classic
from layered.classic import decompose_classic
from layered.stack import Layer, LayerStack

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def flat_design(size: int = 256) -> np.ndarray:
    """A flat design: background, two overlapping shapes, one translucent ellipse, one triangle (4x supersampled)."""
    big = size * 4
    canvas = Image.new("RGBA", (big, big), (240, 236, 220, 255))
    for kind, geometry, colour in (
        ("rectangle", (0.10, 0.15, 0.55, 0.60), (200, 40, 40, 255)),
        ("ellipse", (0.40, 0.35, 0.85, 0.80), (30, 70, 200, 140)),
        ("polygon", ((0.70, 0.05), (0.95, 0.45), (0.55, 0.40)), (60, 60, 60, 255)),
    ):
        shape = Image.new("RGBA", (big, big), (*colour[:3], 0))
        draw = ImageDraw.Draw(shape)
        if kind == "polygon":
            draw.polygon([(x * big, y * big) for x, y in geometry], fill=colour)
        else:
            getattr(draw, kind)([round(v * big) for v in geometry], fill=colour)
        canvas = Image.alpha_composite(canvas, shape)
    return np.asarray(canvas.convert("RGB").reduce(4))


def posterise(image: np.ndarray, layers: int) -> LayerStack:
    """The baseline: median-cut quantisation, one hard-alpha layer per palette colour, largest first."""
    quantised = Image.fromarray(image).quantize(colors=layers, method=Image.Quantize.MEDIANCUT)
    index = np.asarray(quantised)
    palette = np.asarray(quantised.getpalette()[: 3 * layers], np.uint8).reshape(-1, 3)
    used = np.argsort(-np.bincount(index.ravel(), minlength=len(palette)))
    out = []
    for k in used:
        mask = index == k
        if not mask.any():
            continue
        canvas = np.zeros((*index.shape, 4), np.uint8)
        canvas[mask, :3] = palette[k]
        canvas[mask, 3] = 255
        out.append(Layer.from_canvas(canvas, f"colour {k}"))
    return LayerStack(image.shape[1], image.shape[0], tuple(out))


def random_design(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(RGB image, ground-truth full-canvas RGBA layers bottom-first): background + 1-4 anti-aliased shapes."""
    big = size * 4
    layers = [np.asarray(Image.new("RGBA", (size, size), (*rng.integers(0, 256, 3).tolist(), 255)))]
    for _ in range(int(rng.integers(1, 5))):
        colour = (*rng.integers(0, 256, 3).tolist(), 255 if rng.random() < 0.75 else int(rng.integers(110, 210)))
        shape = Image.new("RGBA", (big, big), (*colour[:3], 0))
        draw = ImageDraw.Draw(shape)
        w, h = rng.uniform(0.2, 0.5, 2) * big
        x0, y0 = rng.uniform(0.0, big - w), rng.uniform(0.0, big - h)
        kind = rng.choice(["rectangle", "ellipse", "triangle"])
        if kind == "triangle":
            draw.polygon([(x0 + w / 2, y0), (x0 + w, y0 + h), (x0, y0 + h)], fill=colour)
        else:
            getattr(draw, kind)([x0, y0, x0 + w, y0 + h], fill=colour)
        layers.append(np.asarray(shape.reduce(4)))
    out = Image.new("RGBA", (size, size))
    for layer in layers:
        out = Image.alpha_composite(out, Image.fromarray(layer))
    return np.asarray(out)[..., :3].copy(), layers


def layerd(count: int, size: int) -> None:
    """Mean LayerD scores over `count` random designs for ours (true N, auto) and the one-layer baseline."""
    from layered.metrics import evaluate, mean_scores

    rng = np.random.default_rng(2024)
    runs: dict[str, list] = {"classic, N = truth": [], "classic, auto": [], "one opaque layer": []}
    auto_exact = 0
    for _ in range(count):
        image, truth = random_design(rng, size)
        exact = decompose_classic(image, len(truth))
        auto = decompose_classic(image)
        auto_exact += len(auto) == len(truth)
        opaque = [np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])]
        for name, pred in zip(runs, (exact, auto, opaque), strict=True):
            runs[name].append(evaluate(pred, truth, max_merge=2))
    print(f"LayerD protocol, {count} random flat designs at {size} px (1-4 shapes, 25% translucent)")
    print(f"{'method':22s} {'L1 m0':>7s} {'IoU m0':>7s} {'L1 m2':>7s} {'IoU m2':>7s}")
    for name, scores in runs.items():
        rows = {row["merge"]: row for row in mean_scores(scores)}
        m0, m2 = rows[0], rows[2]
        print(f"{name:22s} {m0['rgb_l1']:7.4f} {m0['soft_iou']:7.4f} {m2['rgb_l1']:7.4f} {m2['soft_iou']:7.4f}")
    print(f"auto found the true layer count in {auto_exact}/{count} designs")


def psnr(stack: LayerStack, image: np.ndarray) -> float:
    mse = np.mean((stack.composite()[..., :3].astype(np.float64) - image) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def ndimage_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """The scipy alternative to classic's `_dilate`: a square maximum filter, outside counting as empty."""
    from scipy import ndimage

    return ndimage.maximum_filter(mask, size=2 * radius + 1, mode="constant", cval=False)


def same_layer(a: Layer, b: Layer) -> bool:
    return np.array_equal(a.pixels, b.pixels) and (a.x, a.y, a.name) == (b.x, b.y, b.name)


def helpers(repeat: int, images: list[tuple[str, np.ndarray]]) -> None:
    """Classic's own dilation vs ndimage's: on masks the size of the shared images, and inside classic."""
    rng = np.random.default_rng(0)
    print(f"square dilation, best of {repeat}: ours (shifted ORs) vs baseline ndimage.maximum_filter")
    print("{:34s} {:>8s} {:>8s} {:>6s}".format("mask", "ours ms", "base ms", "ratio"))
    from scipy import ndimage

    for side, radius, share in ((1328, 4, 0.01), (1328, 4, 0.3), (512, 2, 0.05)):
        mask = ndimage.binary_dilation(rng.random((side, side)) < share / 25, iterations=2)
        assert np.array_equal(classic._dilate(mask, radius), ndimage_dilate(mask, radius))
        ours = best_time(lambda mask=mask, radius=radius: classic._dilate(mask, radius), repeat)
        base = best_time(lambda mask=mask, radius=radius: ndimage_dilate(mask, radius), repeat)
        name = f"{side} px, radius {radius}, {mask.mean():.0%} set"
        print(f"{name:34s} {ours * 1e3:8.2f} {base * 1e3:8.2f} {ours / base:6.2f}")
    print("classic end to end, layers='auto': with our dilation vs with ndimage's (same layers, checked)")
    print("{:34s} {:>8s} {:>8s} {:>6s}".format("image", "ours s", "base s", "ratio"))
    own = classic._dilate
    for name, image in images:
        ours = best_time(lambda image=image: decompose_classic(image), repeat)
        reference = decompose_classic(image)
        classic._dilate = ndimage_dilate
        try:
            base = best_time(lambda image=image: decompose_classic(image), repeat)
            other = decompose_classic(image)
        finally:
            classic._dilate = own
        same = len(other) == len(reference) and all(map(same_layer, other, reference))
        print(f"{name:34s} {ours:8.3f} {base:8.3f} {ours / base:6.2f}{'' if same else '  (layers differ!)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layerd", type=int, default=0, metavar="N", help="also score N random designs (LayerD)")
    parser.add_argument("--size", type=int, default=128, help="design size for --layerd")
    parser.add_argument("--helpers", action="store_true", help="also time classic's own dilation vs ndimage's")
    args = parser.parse_args()
    if args.layerd:
        layerd(args.layerd, args.size)
    images = [("flat design 256 px", flat_design())]
    for path in sorted(SHARED_IMAGES.glob("*.png")):
        images.append((f"{path.name} {Image.open(path).size}", np.asarray(Image.open(path).convert("RGB"))))
    if args.helpers:
        helpers(args.repeat, images)
    print(f"best of {args.repeat}; layers='auto' for ours, the same count for the baseline")
    header = ("image", "layers", "ours s", "base s", "ratio", "peak MiB", "PSNR ours/base")
    print("{:34s} {:>6s} {:>8s} {:>8s} {:>6s} {:>9s} {:>15s}".format(*header))
    for name, image in images:
        stack = decompose_classic(image)
        count = len(stack)
        base = posterise(image, count)
        ours = best_time(lambda image=image: decompose_classic(image), args.repeat)
        baseline = best_time(lambda image=image, count=count: posterise(image, count), args.repeat)
        peak = peak_mib(lambda image=image: decompose_classic(image))
        print(
            f"{name:34s} {len(stack):6d} {ours:8.3f} {baseline:8.3f} {ours / baseline:6.2f} {peak:9.1f} "
            f"{psnr(stack, image):7.1f}/{psnr(base, image):.1f}"
        )


if __name__ == "__main__":
    main()
