"""EMA: the saved transformer is the exponential moving average of the trained weights (diffusers' EMAModel
schedule: decay 0 at the first update, then min(decay, (1 + k) / (10 + k)))."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from test_train_data import write_shards

from training.config import load_config
from training.mmdit import train_mmdit

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_t2l.yaml"


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next((out / "pipeline" / "transformer").glob("*.safetensors"))))


def test_ema_weights_are_the_moving_average(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)

    def run(name: str, steps: int, ema: bool) -> dict[str, torch.Tensor]:
        settings = {
            "data.path": str(data),
            "output_dir": str(tmp_path / name),
            "train.max_steps": steps,
            "train.report_to": None,
            "ema.enabled": ema,
            "ema.decay": 0.9,
        }
        train_mmdit(load_config(CONFIG, settings))
        return weights(tmp_path / name)

    after_1, after_2 = run("one", 1, False), run("two", 2, False)
    averaged = run("ema", 2, True)
    decay = 2 / 11  # second update: k = 1 -> (1 + 1) / (10 + 1), below 0.9
    changed = 0
    for name, value in averaged.items():
        expected = decay * after_1[name] + (1 - decay) * after_2[name]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        changed += int(not torch.equal(after_1[name], after_2[name]))
    assert changed > 0  # the two steps moved the weights, so the average is not trivially equal
