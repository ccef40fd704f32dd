"""Periodic held-out evaluation of the VLD-MMDiT: decompose held-out composites with the current weights
(`LayeredPipeline`, in memory), save the layer folders, and score them with `layered.metrics` (LayerD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def evaluate_heldout(
    pipe, rows: list[dict], out_dir: str | Path, steps: int = 20, max_merge: int = 5, seed: int = 0
) -> dict[str, float]:
    """Decompose each row's composite into as many layers as its ground truth; mean scores per merge k.

    `rows` are prepared rows (`composite`, `layers` full-canvas uint8, `caption`, `id`); layer folders are
    written to `out_dir/<row id>/`. Returns {"eval/soft_iou_m0": ..., "eval/rgb_l1_m0": ..., ...}.
    """
    from PIL import Image

    from layered.fileio import safe_filename
    from layered.metrics import evaluate, mean_scores

    out_dir = Path(out_dir)
    samples = []
    for row in rows:
        generator = torch.Generator().manual_seed(seed)
        result = pipe(
            Image.fromarray(row["composite"]),
            prompt=row["caption"] or None,
            layers=len(row["layers"]),
            num_inference_steps=steps,
            generator=generator,
            true_cfg_scale=1.0,
            height=row["composite"].shape[0],
            width=row["composite"].shape[1],
        )
        stack = result.stacks[0]
        stack.save(out_dir / safe_filename(row["id"], default="row"))
        predicted = [stack.render_layer(i) for i in range(len(stack))]
        samples.append(evaluate(predicted or [np.zeros_like(row["composite"])], row["layers"], max_merge))
    scores = {}
    for entry in mean_scores(samples):
        scores[f"eval/soft_iou_m{entry['merge']}"] = entry["soft_iou"]
        scores[f"eval/rgb_l1_m{entry['merge']}"] = entry["rgb_l1"]
    return scores
