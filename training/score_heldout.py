"""Score a pipeline on a held-out dataset next to the two baselines (the table of the demo model card).

For the first --rows rows: the model decomposes the composite into N = ground-truth layers (empty prompt,
seed 0), the classic method does the same, and the input as one opaque layer is the trivial baseline; all
three are scored with `layered.metrics` (LayerD) up to --max-merge. Prints JSON.

    python -m training.score_heldout layered/assets/demo ds_test --rows 150 --steps 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from layered.errors import LayeredError


def score_heldout(model: str, dataset: str, rows: int, steps: int, max_merge: int = 2) -> dict:
    import torch
    from PIL import Image

    from layered.classic import decompose_classic
    from layered.metrics import evaluate, mean_scores
    from layered.models import load_pipeline
    from training.data import RowReader, index_rows
    from training.vae import psnr

    pipe = load_pipeline(model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    reader = RowReader()
    model_scores, one_layer, classic, psnrs, seconds = [], [], [], [], 0.0
    refs = index_rows(dataset)[:rows]
    for ref in refs:
        row = reader.read(ref)
        composite, layers = row["composite"], row["layers"]
        started = time.perf_counter()
        stack = pipe(
            image=Image.fromarray(composite),
            layers=len(layers),
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
        ).stacks[0]
        seconds += time.perf_counter() - started
        model_scores.append(evaluate(stack, layers, max_merge))
        psnrs.append(psnr(stack.composite()[..., :3] / 255, composite[..., :3] / 255))
        opaque = composite.copy()
        opaque[..., 3] = 255
        one_layer.append(evaluate([opaque], layers, max_merge))
        classic.append(evaluate(decompose_classic(composite, layers=len(layers)), layers, max_merge))
    return {
        "rows": len(refs),
        "steps": steps,
        "s_per_image": seconds / max(len(refs), 1),
        "recomposition_psnr": float(np.mean(psnrs)),
        "model": mean_scores(model_scores),
        "one_layer": mean_scores(one_layer),
        "classic": mean_scores(classic),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="demo, or a pipeline folder")
    parser.add_argument("dataset", help="a dataset folder from `layered psd build` (another seed than training)")
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--max-merge", type=int, default=2)
    args = parser.parse_args()
    try:
        scores = score_heldout(args.model, args.dataset, args.rows, args.steps, args.max_merge)
    except (LayeredError, OSError) as exc:
        print(f"score_heldout: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
