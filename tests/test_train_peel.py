"""`layered train peel`: the peel trainer on `training.loop` (tiny config, same code path as the real one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layered.cli import main as cli
from layered.decompose import Settings, decomposer
from psd_pipeline.synth_rich import draw_rich

CONFIG = "training/configs/tiny_peel.yaml"


def _train(out, *extra) -> int:
    return cli(["train", "peel", CONFIG, "--output-dir", str(out), *extra])


def _losses(out) -> dict[int, float]:
    lines = (out / "logs" / "metrics.jsonl").read_text().splitlines()
    return {row["step"]: row["loss"] for row in map(json.loads, lines) if "loss" in row}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    assert _train(out) == 0
    return out


def test_a_resumed_run_has_the_same_following_losses(straight, tmp_path):
    assert _train(tmp_path, "--max-steps", "2") == 0
    assert _train(tmp_path, "--resume") == 0
    assert _losses(tmp_path) == pytest.approx(_losses(straight), rel=1e-5)
    assert sorted(_losses(tmp_path)) == [1, 2, 3, 4]


def test_the_run_logs_held_out_scores(straight):
    rows = [json.loads(line) for line in (straight / "logs" / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows if "eval/top_iou" in row]
    assert [row["step"] for row in evals] == [2, 4]
    assert all(0.0 <= row["eval/top_iou"] <= 1.0 and 0.0 <= row["eval/stop_accuracy"] <= 1.0 for row in evals)


def test_the_output_is_a_peel_network_the_decomposer_loads(straight):
    image = draw_rich(1000, 1, 64).stack.composite()
    stack = decomposer(Settings(method="peel", model=str(straight / "peel"), layers=3))(image)
    assert len(stack) == 3
    assert np.abs(stack.composite().astype(int) - image.astype(int)).max() <= 1


def test_batches_are_a_pure_function_of_the_step():
    from training.peel import batch_for_step
    from training.peel_data import SynthOptions

    options = SynthOptions(size=32, draw_sizes=(64,))
    a, b = batch_for_step(5, 4, options, []), batch_for_step(5, 4, options, [])
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    c = batch_for_step(6, 4, options, [])
    assert not np.array_equal(a["input"].numpy(), c["input"].numpy())
