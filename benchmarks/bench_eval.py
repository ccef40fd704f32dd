"""`layered eval` speed: `layered.metrics.evaluate` now vs the implementation before issue 18, same stacks, same run.

20 layers a side (a full background and 19 elements of random size with partial alpha) on a 1024 x 1024
canvas, merges 0..5 as `layered eval` runs by default. The baseline is `layered/metrics.py` at commit
78a9670, read with `git show` (so this runs in a git checkout). Prints seconds (best of N), the ratio
baseline / ours, peak traced memory of each, and the largest score difference between the two.
Run: python benchmarks/bench_eval.py [--layers 20] [--side 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

from layered.metrics import evaluate
from layered.stack import Layer, LayerStack

BASELINE_COMMIT = "78a9670"
ROOT = Path(__file__).resolve().parents[1]


def make_stack(rng: np.random.Generator, count: int, side: int) -> LayerStack:
    background = np.empty((side, side, 4), np.uint8)
    background[..., :3] = rng.integers(0, 256, 3, dtype=np.uint8)
    background[..., 3] = 255
    layers = [Layer(background, 0, 0, "background")]
    for i in range(count - 1):
        w, h = (int(v) for v in rng.integers(side // 16, side // 2, 2))
        pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        pixels[..., 3] = np.where(rng.random((h, w)) < 0.9, 255, 128)
        x, y = int(rng.integers(0, side - w)), int(rng.integers(0, side - h))
        layers.append(Layer(pixels, x, y, f"element {i}"))
    return LayerStack(side, side, tuple(layers))


def baseline_module() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:layered/metrics.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("metrics_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"metrics.py@{BASELINE_COMMIT}", "exec"), module.__dict__)
    return module


def measure(fn, repeat: int) -> tuple[float, float, list]:
    """Best wall time over `repeat` runs, the peak traced allocation (MiB) of one more, and its result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    try:
        baseline = baseline_module()
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"bench_eval: cannot read the baseline from git ({exc})")
    rng = np.random.default_rng(0)
    pred, gt = make_stack(rng, args.layers, args.side), make_stack(rng, args.layers, args.side)
    ours_s, ours_mib, ours = measure(lambda: evaluate(pred, gt, 5), args.repeat)
    base_s, base_mib, base = measure(lambda: baseline.evaluate(pred, gt, 5), args.repeat)
    diff = max(abs(a[key] - b[key]) for a, b in zip(ours, base, strict=True) for key in ("rgb_l1", "soft_iou"))
    print(f"{args.layers} layers a side at {args.side}x{args.side}, merges 0..5")
    print(f"ours     {ours_s:7.3f} s  peak {ours_mib:8.1f} MiB")
    print(f"baseline {base_s:7.3f} s  peak {base_mib:8.1f} MiB  (layered.metrics at {BASELINE_COMMIT})")
    print(f"speed-up {base_s / ours_s:.2f}x  memory ratio ours/baseline {ours_mib / base_mib:.2f}")
    print(f"largest score difference {diff:.2e}")


if __name__ == "__main__":
    main()
