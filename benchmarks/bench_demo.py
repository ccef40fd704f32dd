"""The shipped demo model on this CPU: load time and seconds per image against the issue's targets (one run).

Targets (issue 6): load <= 2 s, <= 3 s per image at the native size, 4 layers, the default steps (the CLI's 50).
Load is timed after the imports (torch and diffusers cost the same for any model) and reported beside them.
Per image is the best of --repeats decompositions of a held-out synthetic design; the classic method on the
same image is printed for scale. Peak memory is the process's peak resident set size.

    python benchmarks/bench_demo.py [--repeats 3] [--steps 50] [--layers 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD_TARGET_S, IMAGE_TARGET_S = 2.0, 3.0


def held_out_design(size: int):
    """Design 0 of the held-out seed (`layered psd synth --seed 1000`; the demo model trained on seed 0)."""
    from psd_pipeline.synth import make_design

    return make_design(seed=1000, index=0, size=size, style="flat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--model", default="demo", help="demo (default) or a pipeline folder")
    args = parser.parse_args()

    started = time.perf_counter()
    import torch

    from layered.classic import decompose_classic
    from layered.decompose import Settings, call_pipeline
    from layered.models import load_pipeline
    from layered.pipeline import LayeredPipeline  # noqa: F401  (import cost counted here, not in the load)

    imports_s = time.perf_counter() - started
    torch.set_num_threads(torch.get_num_threads())

    started = time.perf_counter()
    pipe = load_pipeline(args.model, dtype=torch.float32)
    load_s = time.perf_counter() - started
    pipe.set_progress_bar_config(disable=True)
    size = int(pipe.config.default_resolution)

    rgba = held_out_design(size).composite()
    settings = Settings(method="model", layers=args.layers, steps=args.steps)

    def decompose():
        return call_pipeline(pipe, rgba, settings)

    decompose()  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        decompose()
        times.append(time.perf_counter() - started)
    per_image = min(times)

    started = time.perf_counter()
    decompose_classic(rgba, args.layers)
    classic_s = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"model: {args.model} ({size} px native, {args.layers} layers, "
        f"{args.steps} steps, {torch.get_num_threads()} threads)"
    )
    print(f"imports (torch, diffusers, layered): {imports_s:.2f} s")
    print(f"load:      {load_s:.2f} s   target {LOAD_TARGET_S:.1f} s   ratio {load_s / LOAD_TARGET_S:.2f}")
    print(
        f"per image: {per_image:.2f} s   target {IMAGE_TARGET_S:.1f} s   ratio {per_image / IMAGE_TARGET_S:.2f}"
        f"   (all runs: {', '.join(f'{t:.2f}' for t in times)})"
    )
    print(f"classic on the same image: {classic_s * 1000:.1f} ms")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    sys.exit(0)


if __name__ == "__main__":
    main()
