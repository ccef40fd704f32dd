"""Periodic held-out evaluation: sample decompositions saved as layer folders, LayerD scores logged
(metrics.jsonl and TensorBoard) that match a re-scoring of the saved folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train_data import write_shards

from layered.metrics import evaluate
from layered.stack import LayerStack
from training.config import load_config
from training.data import RowReader, index_rows
from training.mmdit import train_mmdit

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_i2l.yaml"


def test_heldout_eval_logs_scores_of_saved_samples(tmp_path):
    pytest.importorskip("tensorboard")
    data = write_shards(tmp_path / "ds", rows=3, layers=2)
    settings = {
        "data.path": str(data),
        "output_dir": str(tmp_path / "out"),
        "data.held_out": 1,
        "eval.every": 2,
        "eval.steps": 2,
        "eval.max_merge": 1,
        "train.max_steps": 2,
        "train.report_to": "tensorboard",
    }
    train_mmdit(load_config(CONFIG, settings))
    lines = [json.loads(x) for x in (tmp_path / "out" / "logs" / "metrics.jsonl").read_text().splitlines()]
    logged = next(x for x in lines if "eval/soft_iou_m0" in x)
    assert logged["step"] == 2
    folder = tmp_path / "out" / "samples" / "step-2" / "row-0000"
    stack = LayerStack.load(folder)
    truth = RowReader().read(index_rows(data)[0])["layers"]  # 32 x 32 rows: the bucket size, no resize
    scores = evaluate([stack.render_layer(i) for i in range(len(stack))], truth, max_merge=1)
    assert logged["eval/soft_iou_m0"] == pytest.approx(scores[0]["soft_iou"])
    assert logged["eval/rgb_l1_m1"] == pytest.approx(scores[1]["rgb_l1"])
    assert list((tmp_path / "out" / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event file"
