"""What the peel loop scores with a perfect network: its ceiling, set by the split, the fill and the order.

The loop (`layered.peel.decompose_peel`, then refinement) runs on held-out rich designs (seed 1000), but each
round's maps come from the ground truth (`training.peel_data.peel_rounds`: the true top alpha, kinds, text
boxes, touching pixels) instead of the network. What is lost against the oracle is lost by the loop itself;
what a trained network scores below this line is the network's. Prints L1 / soft IoU at merge 0 and 2 beside
classic, on the same designs, N = the true count.

    python benchmarks/bench_peel_bound.py [--count 32] [--size 256]
"""

from __future__ import annotations

import argparse
from unittest import mock

import numpy as np


class _Config:
    sample_size = 128


class PerfectNetwork:
    """Stands in for `PeelNet`: `layered.peel.predict` is patched to return the true maps of each round."""

    config = _Config()

    def __init__(self, rounds: list[dict]) -> None:
        self.rounds = rounds
        self.calls = 0

    def maps(self) -> dict[str, np.ndarray]:
        r = self.rounds[min(self.calls, len(self.rounds) - 1)]
        self.calls += 1
        kind = np.stack([(r["kind"] == k).astype(np.float32) for k in range(4)])
        return {"alpha": r["alpha"], "kind": kind, "text_box": r["text_box"], "touch": r["touch"]}


def main() -> None:
    from layered.classic import decompose_classic
    from layered.metrics import evaluate, mean_scores
    from layered.peel import decompose_peel
    from layered.refine import refine
    from psd_pipeline.synth_rich import draw_rich
    from training.peel_data import SynthOptions, design_layers, peel_rounds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    options = SynthOptions(seed=1000, draw_sizes=(args.size,))
    rows = {"peel, perfect network": [], "classic": []}
    for index in range(1, args.count + 1):
        truth = draw_rich(1000, index, args.size).stack
        image = truth.composite()
        layers, kinds = design_layers(index, options, [])
        network = PerfectNetwork(peel_rounds(layers, kinds, np.random.default_rng(index), 1.0))
        with mock.patch("layered.peel.predict", lambda _model, _rgb, _removed, net=network: net.maps()):
            stack = refine(decompose_peel(image, network, len(truth)), image)
        rows["peel, perfect network"].append(evaluate(stack, truth, 2))
        rows["classic"].append(evaluate(decompose_classic(image, len(truth)), truth, 2))
    print(f"{args.count} held-out designs at {args.size} px, N = the true count\n")
    print("| method | L1@0 | IoU@0 | L1@2 | IoU@2 |")
    print("|---|---|---|---|---|")
    for name, scores in rows.items():
        cells = [
            f"{row[key]:.3f}" for row in [mean_scores(scores)[k] for k in (0, 2)] for key in ("rgb_l1", "soft_iou")
        ]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
