"""`layered train` on the command line: light to import, one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"


def layered(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layered", *args], cwd=ROOT, capture_output=True, text=True)


def test_help_does_not_import_torch():
    code = "import sys; from layered.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train: {max_stepz: 3}\n")
    cases = [
        (["train", "mmdit", str(tmp_path / "missing.yaml")], "config file not found"),
        (["train", "mmdit", str(bad_yaml)], "unknown key(s) max_stepz in train"),
        (["train", "mmdit", str(CONFIGS / "tiny_t2l.yaml"), "--data", str(tmp_path)], "no Parquet shards"),
        (["train", "mmdit", str(CONFIGS / "tiny_t2l.yaml")], "no training data"),
        (["train", "mmdit", str(CONFIGS / "tiny_t2l.yaml"), "--build-cache"], "--build-cache needs --cache"),
    ]
    for args, message in cases:
        out = layered(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, out.stderr)


def test_resume_at_the_last_step_writes_the_output_again(tmp_path):
    """A run resumed at max_steps trains nothing but still writes its folder (how a stage is stopped early)."""
    import yaml
    from test_train_data import write_shards

    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    raw = yaml.safe_load((CONFIGS / "tiny_vae.yaml").read_text())
    raw["train"].update(checkpoint_every=1, report_to=None)
    raw["data"]["held_out"] = 0
    config = tmp_path / "vae.yaml"
    config.write_text(yaml.safe_dump(raw))
    args = ["train", "vae", str(config), "--data", str(data), "--output-dir", str(tmp_path / "out"), "--max-steps", "2"]
    first = layered(*args)
    assert first.returncode == 0, first.stderr
    assert "last loss" in first.stdout
    weights = tmp_path / "out" / "vae" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    again = layered(*args, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"wrote {tmp_path / 'out' / 'vae'} (step 2)" in again.stdout
    assert weights.is_file()
