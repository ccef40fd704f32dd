"""`layered train peel`: the peel trainer on `training.loop` (tiny config, same code path as the real one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layered.cli import main as cli
from layered.decompose import Settings, decomposer
from psd_pipeline.synth_rich import draw_rich

CONFIG = "training/configs/tiny_peel.yaml"
SHIPPED_STAGE = "training/configs/peel_stage8.yaml"  # the config of the shipped network's last stage


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


def test_the_committed_checkpoint_is_the_shipped_network_and_resumes_deterministically(tmp_path):
    """training/runs/peel (packed, no pickle) resumes: its weights are the shipped ones, its next step repeatable."""
    import torch

    from layered.peel import PEEL_DIR, load_peel
    from training import portable
    from training.config import load_config

    packed = "training/runs/peel"
    config = SHIPPED_STAGE
    last = load_config(config).train.max_steps
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        portable.unpack(packed, out)
        assert cli(["train", "peel", config, "--output-dir", str(out), "--resume", "--max-steps", str(last + 1)]) == 0
        runs.append(out)
    assert _losses(runs[0]) == _losses(runs[1]) and list(_losses(runs[0])) == [last + 1]
    out = tmp_path / "c"
    portable.unpack(packed, out)
    assert cli(["train", "peel", config, "--output-dir", str(out), "--resume", "--max-steps", str(last)]) == 0
    resumed = load_peel(out / "peel").state_dict()
    for key, value in load_peel(PEEL_DIR).state_dict().items():  # fp16 copy of the same weights
        assert torch.allclose(resumed[key].float(), value.float(), rtol=1e-2, atol=1e-3), key


def test_init_from_grows_the_network_by_bottleneck_blocks_that_start_as_the_identity(tmp_path):
    import torch

    from layered.errors import LayeredError
    from layered.peel_model import PeelNet
    from training.config import load_config
    from training.peel import initial_model

    torch.manual_seed(0)
    previous = PeelNet(channels=(4, 8, 8, 8), head_channels=4, sample_size=32).eval()
    with torch.no_grad():  # running statistics of a trained network, not the defaults
        for module in previous.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    previous.save_pretrained(tmp_path / "previous")
    overrides = {"model.init_from": str(tmp_path / "previous"), "model.peel": {"bottleneck_blocks": 2}}
    grown = initial_model(load_config(CONFIG, overrides)).eval()
    assert grown.config.bottleneck_blocks == 2 and len(grown.bottleneck) == 2
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in previous.parameters())
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grown(x), previous(x), atol=1e-6)
    unchanged = initial_model(load_config(CONFIG, {**overrides, "model.peel": None}))
    assert unchanged.config.bottleneck_blocks == 0
    with pytest.raises(LayeredError, match="bottleneck_blocks"):
        initial_model(load_config(CONFIG, {**overrides, "model.peel": {"channels": [8, 8, 8, 8]}}))


def test_a_missing_teacher_folder_is_one_clear_error_before_training(tmp_path, capsys):
    from layered.errors import InputError
    from training.config import load_config
    from training.peel import train_peel

    synth = {"teacher": str(tmp_path / "nowhere"), "on_policy_next": 0.5}
    config = load_config(CONFIG, {"output_dir": str(tmp_path / "run"), "data.synth": synth})
    with pytest.raises(InputError, match="nowhere"):
        train_peel(config)
    assert "train:" not in capsys.readouterr().err  # raised before training starts, not from its data worker
