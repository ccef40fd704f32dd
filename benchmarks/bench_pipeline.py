"""LayeredPipeline vs stock QwenImageLayeredPipeline on the same tiny weights and input (one run), and peak
memory per offload mode (each mode in a fresh subprocess; peak RSS on CPU, peak CUDA memory on GPU).

    python benchmarks/bench_pipeline.py [--repeats 5] [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _inputs():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).convert("RGBA")


def _time_pair(a, b, repeats: int) -> tuple[float, float]:
    """Best time of `a` and of `b`, run alternately (a shared CPU drifts; alternating keeps the ratio fair)."""
    a(), b()  # warm-up
    best_a = best_b = float("inf")
    for _ in range(repeats):
        for fn, slot in ((a, 0), (b, 1)):
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if slot == 0:
                best_a = min(best_a, elapsed)
            else:
                best_b = min(best_b, elapsed)
    return best_a, best_b


def speed(repeats: int, steps: int, device: str) -> None:
    import torch
    from diffusers import QwenImageLayeredPipeline
    from tiny_pipeline import tiny_components

    from layered.pipeline import LayeredPipeline

    components = tiny_components(seed=0, downsample=4)
    stock = QwenImageLayeredPipeline(**components).to(device)
    ours = LayeredPipeline(**components).to(device)
    image = _inputs()
    kwargs = dict(prompt="a red square", layers=3, num_inference_steps=steps, resolution=640, output_type="pt")
    for p in (stock, ours):
        p.set_progress_bar_config(disable=True)

    def run(p):
        return lambda: p(image, generator=torch.Generator().manual_seed(0), **kwargs)

    t_stock, t_ours = _time_pair(run(stock), run(ours), repeats)
    print(f"batch 1, 640 bucket, 3 layers, {steps} steps, {device}: best of {repeats}")
    print(f"  stock QwenImageLayeredPipeline {t_stock * 1000:8.1f} ms")
    print(f"  LayeredPipeline                {t_ours * 1000:8.1f} ms   ratio ours/stock = {t_ours / t_stock:.3f}")
    print("  (ours also builds the LayerStacks: 3 premultiplied resizes to the input size)")


def memory_child(mode: str, steps: int, device: str) -> None:
    import torch
    from tiny_pipeline import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0, downsample=4, default_resolution=640)
    pipe.configure_memory(offload=mode if mode != "fp8" else "none", device=device, layerwise_fp8=mode == "fp8")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipe(
        _inputs(),
        prompt="a red square",
        layers=3,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_mib": peak}))


def memory(steps: int, device: str) -> None:
    kind = "peak CUDA allocated" if device.startswith("cuda") else "peak process RSS (includes torch itself)"
    print(f"offload modes, tiny model at 640, {device}: {kind}")
    for mode in ("none", "model", "sequential", "group", "fp8"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--steps", str(steps), "--device", device],
            capture_output=True,
            text=True,
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if not line:
            print(f"  {mode:10s} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(line[-1])
        print(f"  {mode:10s} {r['seconds'] * 1000:8.1f} ms   {r['peak_mib']:8.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        memory_child(args.child, args.steps, args.device)
    else:
        speed(args.repeats, args.steps, args.device)
        memory(args.steps, args.device)
