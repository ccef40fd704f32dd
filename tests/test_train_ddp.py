"""Two CPU processes (gloo DDP) give the loss curve of one process with the doubled batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_train_data import write_shards

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.multiprocess


def run(tmp_path: Path, name: str, data: Path, batch: int, processes: int) -> list[float]:
    raw = yaml.safe_load((ROOT / "training" / "configs" / "tiny_t2l.yaml").read_text())
    raw["data"].update(path=str(data), batch_size=batch, caption_dropout=0.5)
    raw["train"].update(max_steps=4, report_to=None, checkpoint_every=100)
    raw["output_dir"] = str(tmp_path / name)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    command = [sys.executable, "-m", "layered", "train", "mmdit", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if processes > 1:  # accelerate picks gloo on CPU when launched by torchrun with ACCELERATE_USE_CPU
        torchrun = shutil.which("torchrun")
        if torchrun is None:
            pytest.skip("torchrun is not installed")
        command = [torchrun, "--nproc_per_node", str(processes), "-m", *command[2:]]
        env["ACCELERATE_USE_CPU"] = "true"
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = (tmp_path / name / "logs" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_two_process_ddp_matches_one_process_with_double_batch(tmp_path):
    data = write_shards(tmp_path / "ds", rows=6, layers=[2, 3])
    two = run(tmp_path, "two", data, batch=1, processes=2)
    one = run(tmp_path, "one", data, batch=2, processes=1)
    assert len(one) == len(two) == 4
    assert two == pytest.approx(one, rel=1e-4)
    assert one[-1] < one[0]  # it trains
