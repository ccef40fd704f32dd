"""What a perfect transformer could score on top of a VAE: the true layers of bench_quality's held-out rich designs,
resized to the working size, optionally through the VAE (posterior mode), refined to the input, LayerD at merge 0.

    python -m training.vae_bound VAE_DIR [--count 32] [--sizes 128 256] [--working-size 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELD_OUT_SEED = 1000  # bench_quality's held-out seed: never used for training


def vae_bound(vae_dir: str, count: int, sizes: list[int], working: int) -> list[dict]:
    """One row per (size, path): mean RGB L1 and soft IoU at merge 0 of the refined true layers."""
    from diffusers import AutoencoderKLQwenImage

    from layered.metrics import evaluate, mean_scores
    from layered.pixels import resize_rgba
    from layered.refine import refine
    from layered.stack import Layer, LayerStack
    from psd_pipeline.synth_rich import draw_rich
    from training.vae import reconstruct

    if not (Path(vae_dir) / "config.json").is_file():
        raise ValueError(f"{vae_dir}: not a VAE folder (no config.json)")
    vae = AutoencoderKLQwenImage.from_pretrained(vae_dir).eval()
    rows = []
    for size in sizes:
        scores: dict[str, list] = {"resized": [], "resized, through the VAE": []}
        for k in range(1, count + 1):
            truth = draw_rich(HELD_OUT_SEED, k, size).stack
            small = [resize_rgba(truth.render_layer(i), (working, working)) for i in range(len(truth))]
            for path, layers in zip(scores, (small, [reconstruct(vae, p) for p in small]), strict=True):
                stack = LayerStack(working, working, tuple(Layer(p, 0, 0, f"layer {i}") for i, p in enumerate(layers)))
                scores[path].append(evaluate(refine(stack, truth.composite()), truth, 0))
        for path, rows_of_path in scores.items():
            mean = mean_scores(rows_of_path)[0]
            rows.append({"size": size, "path": path, "rgb_l1": mean["rgb_l1"], "soft_iou": mean["soft_iou"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vae", help="an RGBA-VAE folder (a training run's vae/)")
    parser.add_argument("--count", type=int, default=32, help="held-out designs per size (default 32)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--working-size", type=int, default=64, help="the model's working size (default 64)")
    args = parser.parse_args()
    try:
        rows = vae_bound(args.vae, args.count, args.sizes, args.working_size)
    except (OSError, ValueError) as exc:
        print(f"vae_bound: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("| input size | true layers at the working size | L1@0 | IoU@0 |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['size']} px | {row['path']}, refined | {row['rgb_l1']:.3f} | {row['soft_iou']:.3f} |")


if __name__ == "__main__":
    main()
