"""What lies beneath a peeled element: peel's fill (`layered.peel.fill_beneath`) against plainer fills, one run.

For every peel round of held-out rich designs (seed 1000, 128 px working size, the true top elements), each fill
rebuilds what the top elements covered and is compared with the exact composite of the layers left (the ground
truth the next round and the background layer should see): mean absolute error in levels (0-255) over the
covered pixels, and seconds per round. Fills:
  peel         Telea inpainting, and unblending under see-through elements (what the peel loop runs);
  telea / ns   OpenCV's cv2.inpaint, Telea or Navier-Stokes, over every covered pixel;
  mean ring    the mean colour of a 2-pixel ring around the covered pixels (a palette fill).

    python benchmarks/bench_fill.py [--count 48]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

HELD_OUT_SEED = 1000


def _hole(alphas):
    from scipy import ndimage

    from layered.peel import EMPTY, union_alpha

    return ndimage.binary_dilation(union_alpha(alphas, alphas[0].shape) > EMPTY, iterations=1)


def cv2_fill(flag):
    import cv2

    def fill(rgb, alphas):
        return cv2.inpaint(rgb, _hole(alphas).astype(np.uint8), 3, flag)

    return fill


def mean_ring(rgb, alphas):
    from scipy import ndimage

    hole = _hole(alphas)
    ring = ndimage.binary_dilation(hole, iterations=2) & ~hole
    out = rgb.copy()
    if ring.any():
        out[hole] = rgb[ring].mean(axis=0).round().astype(np.uint8)
    return out


def peel_fill(rgb, alphas):
    from layered.peel import fill_beneath

    return fill_beneath(rgb, alphas)[0]


def main() -> None:
    import cv2

    from training.peel_data import SynthOptions, _flatten, design_layers, top_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    args = parser.parse_args()
    fills = {
        "peel": peel_fill,
        "telea": cv2_fill(cv2.INPAINT_TELEA),
        "ns": cv2_fill(cv2.INPAINT_NS),
        "mean ring": mean_ring,
    }
    errors = {name: [] for name in fills}
    seconds = dict.fromkeys(fills, 0.0)
    rounds = 0
    options = SynthOptions(seed=HELD_OUT_SEED)
    for index in range(1, args.count + 1):
        layers, _ = design_layers(index, options, [])
        alphas = [layer[..., 3] for layer in layers]
        left = list(range(1, len(layers)))
        while True:
            top = top_set(alphas, left)
            if not top:
                break
            shown = _flatten(layers, [0, *left])
            left = [i for i in left if i not in top]
            truth = _flatten(layers, [0, *left]).astype(np.float32)
            covered = _hole([alphas[j] for j in top])
            for name, fill in fills.items():
                started = time.perf_counter()
                out = fill(shown, [alphas[j] for j in top])
                seconds[name] += time.perf_counter() - started
                errors[name].append(float(np.abs(out.astype(np.float32) - truth)[covered].mean()))
            rounds += 1
    print(f"{rounds} rounds of {args.count} held-out designs (128 px)\n")
    print("| fill | mean abs error (levels) | ms per round |")
    print("|---|---|---|")
    for name in fills:
        print(f"| {name} | {np.mean(errors[name]):.2f} | {1000 * seconds[name] / rounds:.2f} |")


if __name__ == "__main__":
    main()
