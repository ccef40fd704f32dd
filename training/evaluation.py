"""Periodic held-out evaluation of the VLD-MMDiT: decompose held-out composites with the current weights
(`LayeredPipeline`, in memory, through `layered.decompose`), save the layer folders, and score them with
`layered.metrics` (LayerD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def evaluate_heldout(
    pipe, rows: list[dict], out_dir: str | Path, *, steps: int = 20, max_merge: int = 5, seed: int = 0
) -> dict[str, float]:
    """Decompose each row's composite into as many layers as its ground truth; mean scores per merge k.

    `rows` are prepared rows (`composite`, `layers` full-canvas uint8, `caption`, `id`), decomposed at their own
    size without guidance; layer folders are written to `out_dir/<row id>/`. Returns
    {"eval/soft_iou_m0": ..., "eval/rgb_l1_m0": ..., ...}.
    """
    from layered.decompose import Settings, decomposer
    from layered.fileio import safe_filename
    from layered.metrics import evaluate, mean_scores

    out_dir = Path(out_dir)
    samples = []
    for row in rows:
        settings = Settings(
            method="model",
            layers=len(row["layers"]),
            steps=steps,
            seed=seed,
            prompt=row["caption"],
            exact_size=True,
        )
        stack = decomposer(settings, pipeline=pipe)(row["composite"])
        stack.save(out_dir / safe_filename(row["id"], default="row"))
        predicted = [stack.render_layer(i) for i in range(len(stack))]
        samples.append(evaluate(predicted or [np.zeros_like(row["composite"])], row["layers"], max_merge))
    scores = {}
    for entry in mean_scores(samples):
        scores[f"eval/soft_iou_m{entry['merge']}"] = entry["soft_iou"]
        scores[f"eval/rgb_l1_m{entry['merge']}"] = entry["rgb_l1"]
    return scores
