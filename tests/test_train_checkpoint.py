"""Checkpoints: kill -9 then --resume continues at the same step with the same batches; NaN stops cleanly.

The loop (`training.loop`) is shared: divergence, a resume without a checkpoint and the metrics cadence are
checked on both trainers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_train_data import write_shards

from training import loop, mmdit, vae
from training.checkpoint import latest_checkpoint, list_checkpoints
from training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "training" / "configs" / "tiny_t2l.yaml"


def write_config(tmp_path: Path, data: Path, out: Path, **train) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"].update(path=str(data), batch_size=2)
    raw["output_dir"] = str(out)
    raw["train"].update({"report_to": None, "checkpoints_total_limit": 10, **train})
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_kill_9_then_resume_gives_the_same_steps(tmp_path):
    data = write_shards(tmp_path / "ds", rows=6, layers=[2, 3])
    reference = mmdit.train_mmdit(
        load_config(write_config(tmp_path, data, tmp_path / "ref", checkpoint_every=3, max_steps=12))
    )
    assert len(reference["losses"]) == 12

    killed = write_config(tmp_path, data, tmp_path / "killed", checkpoint_every=3, max_steps=500)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "layered", "train", "mmdit", str(killed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(tmp_path / "killed") is None:
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the deadline"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    step, _ = latest_checkpoint(tmp_path / "killed")
    if step >= 12:
        pytest.skip(f"the run reached step {step} before the kill")
    resumed = mmdit.train_mmdit(load_config(killed, {"train.max_steps": 12}), resume=True)
    assert resumed["start_step"] == step
    assert resumed["losses"] == pytest.approx(reference["losses"][step:], rel=1e-5, abs=1e-6)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    config = load_config(write_config(tmp_path, data, tmp_path / "out", checkpoint_every=2, max_steps=10))
    real = mmdit.compute_loss
    calls = []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(mmdit, "compute_loss", poisoned)
    with pytest.raises(loop.TrainingDiverged, match=r"loss is nan at step 3.*checkpoint-2"):
        mmdit.train_mmdit(config)
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]
    assert not (tmp_path / "out" / "pipeline").exists()
    # The kept checkpoint resumes: steps 3.. run from it with the real loss.
    monkeypatch.setattr(mmdit, "compute_loss", real)
    resumed = mmdit.train_mmdit(
        load_config(write_config(tmp_path, data, tmp_path / "out", checkpoint_every=2, max_steps=4)), resume=True
    )
    assert resumed["start_step"] == 2 and len(resumed["losses"]) == 2


TRAINERS = {"vae": (vae, "vae_loss", vae.train_vae), "mmdit": (mmdit, "compute_loss", mmdit.train_mmdit)}


def trainer_config(task: str, data: Path, out: Path, **train):
    """A tiny config of `task` (log_every 10: above the steps run, so metrics.jsonl's cadence shows)."""
    settings = {"data.path": str(data), "output_dir": str(out), "data.batch_size": 2, "train.report_to": None}
    settings.update({f"train.{k}": v for k, v in train.items()})
    name = "tiny_vae.yaml" if task == "vae" else "tiny_t2l.yaml"
    return load_config(ROOT / "training" / "configs" / name, {**settings, "train.log_every": 10})


@pytest.mark.parametrize("task", ["vae", "mmdit"])
def test_divergence_ends_training_then_raises(task, tmp_path, monkeypatch):
    from accelerate import Accelerator

    module, loss_name, train = TRAINERS[task]
    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    real_loss, calls, ended = getattr(module, loss_name), [], []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    real_end = Accelerator.end_training
    monkeypatch.setattr(module, loss_name, poisoned)
    monkeypatch.setattr(Accelerator, "end_training", lambda self: (ended.append(1), real_end(self))[1])
    with pytest.raises(loop.TrainingDiverged, match=r"loss is nan at step 3.*checkpoint-2"):
        train(trainer_config(task, data, tmp_path / "out", checkpoint_every=2, max_steps=10))
    assert ended == [1]
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]


@pytest.mark.parametrize("task", ["vae", "mmdit"])
def test_resume_without_a_checkpoint_says_so_and_logs_every_step(task, tmp_path, capsys):
    _, _, train = TRAINERS[task]
    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    result = train(trainer_config(task, data, tmp_path / "out", checkpoint_every=100, max_steps=3), resume=True)
    assert result["start_step"] == 0 and len(result["losses"]) == 3
    assert (
        f"--resume: no checkpoint in {tmp_path / 'out' / 'checkpoints'}, starting at step 0" in capsys.readouterr().out
    )
    lines = (tmp_path / "out" / "logs" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [row["step"] for row in logged] == [1, 2, 3]  # one line a step, whatever train.log_every is
    assert [row["loss"] for row in logged] == pytest.approx(result["losses"])
