"""Score a pipeline on a held-out dataset next to the two baselines (the table of the demo model card).

For the first --rows rows: the model decomposes the composite into N = ground-truth layers (empty prompt,
seed 0), the classic method does the same, and the input as one opaque layer is the trivial baseline; all
three are scored with `layered.metrics` (LayerD) up to --max-merge. The model's layers are scored twice: raw
(resized to the input, `refine=False`) and refined (`layered.refine`, what `pipe(...)` returns by default),
each with its recomposition PSNR. Prints JSON.

    python -m training.score_heldout layered/assets/demo ds_test --rows 150 --steps 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time

import numpy as np

from layered.errors import LayeredError


def score_heldout(model: str, dataset: str, rows: int, steps: int, max_merge: int = 2) -> dict:
    from layered.classic import decompose_classic
    from layered.decompose import Settings, call_pipeline, load_model
    from layered.metrics import evaluate, mean_scores
    from layered.refine import refine
    from layered.similarity import psnr
    from layered.stack import LayerStack
    from training.data import RowReader, index_rows

    settings = Settings(method="model", model=model, steps=steps, refine=False, device="cpu", dtype="float32")
    pipe = load_model(settings)
    reader = RowReader()
    model_scores, one_layer, classic, psnrs, seconds = [], [], [], [], 0.0
    refined_scores, refined_psnrs, refined_errors, refine_seconds = [], [], [], 0.0
    refs = index_rows(dataset)[:rows]
    for ref in refs:
        row = reader.read(ref)
        composite, layers = row["composite"], row["layers"]
        started = time.perf_counter()
        out = call_pipeline(pipe, composite, dataclasses.replace(settings, layers=len(layers)))
        seconds += time.perf_counter() - started
        stack = out.stacks[0]  # the raw layers, resized to the input
        model_scores.append(evaluate(stack, layers, max_merge))
        psnrs.append(psnr(stack.composite()[..., :3] / 255, composite[..., :3] / 255))
        started = time.perf_counter()  # the same layers at the working size, refined as `pipe(...)` does by default
        working = LayerStack.from_images(list((np.asarray(out.images[0]) * 255).round().astype(np.uint8)))
        refined = refine(working, composite)
        refine_seconds += time.perf_counter() - started
        refined_scores.append(evaluate(refined, layers, max_merge))
        refined_psnrs.append(psnr(refined.composite()[..., :3] / 255, composite[..., :3] / 255))
        refined_errors.append(float(np.mean((refined.composite()[..., :3] / 255 - composite[..., :3] / 255) ** 2)))
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
        "refined_s_per_image": refine_seconds / max(len(refs), 1),
        # refined layers often recompose bit-exactly (inf dB per image): the PSNR of the pooled error instead
        "refined_recomposition_psnr": psnr_of_mse(refined_errors),
        "refined_min_psnr": float(min(refined_psnrs, default=math.nan)),
        "model_refined": mean_scores(refined_scores),
        "one_layer": mean_scores(one_layer),
        "classic": mean_scores(classic),
    }


def psnr_of_mse(errors: list[float]) -> float:
    """PSNR in dB of the mean of per-image mean squared errors (values in [0, 1]); inf when all are 0."""
    mse = float(np.mean(errors)) if errors else math.nan
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


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
