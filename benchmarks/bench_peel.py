"""Peel speed and memory against the classic method, same images, one run (issue 23's targets).

Inputs: held-out rich designs (seed 1000) drawn at 256 px and at 1024 px. Both methods go through
`layered.decompose.decomposer` with the true layer count and refinement on (what `layered decompose` runs),
after one warm-up image (imports and the network's load are not counted). Prints seconds per image (mean of
--count images), the ratio peel / classic, and the peak resident memory of the process.
Targets on a 2-core CPU: peel at most 1.5 s per 256 px image and 8 s per 1024 px image, peak at most 1.5 GB.

    python benchmarks/bench_peel.py [--count 8] [--peel shipped|DIR]
"""

from __future__ import annotations

import argparse
import resource
import time

from psd_pipeline.synth_rich import draw_rich

HELD_OUT_SEED = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--peel", default="shipped", help="shipped (default) or a PeelNet folder")
    args = parser.parse_args()
    from layered.decompose import Settings, decomposer

    model = "demo" if args.peel == "shipped" else args.peel
    print("| size | method | s/img | peel / classic |")
    print("|---|---|---|---|")
    for size in (256, 1024):
        designs = [draw_rich(HELD_OUT_SEED, k, size) for k in range(1, args.count + 1)]
        times = {}
        for method in ("classic", "peel"):
            runs = []
            for design in designs:
                settings = Settings(method=method, model=model, layers=len(design.stack))
                runs.append((decomposer(settings), design.stack.composite()))
            runs[0][0](runs[0][1])  # warm-up: imports, the network's load
            started = time.perf_counter()
            for decompose, image in runs:
                decompose(image)
            times[method] = (time.perf_counter() - started) / len(runs)
        for method in ("classic", "peel"):
            ratio = f"{times['peel'] / times['classic']:.2f}" if method == "peel" else ""
            print(f"| {size} px | {method} | {times[method]:.3f} | {ratio} |", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
