"""Two CPU processes under the shipped FSDP config (gloo): one loadable pipeline, the doubled-batch weights, resume.

Run alone with `pytest -m multiprocess`. Every run goes through `accelerate launch --config_file` as a user's does,
with training/configs/accelerate/fsdp.yaml changed only where a CPU needs it (see `accelerate_config`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from test_train_data import write_shards
from test_train_lora import decompose, save_base_pipeline

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.multiprocess


def accelerate_config(folder: Path, name: str) -> Path:
    """A shipped accelerate config with only what a CPU needs changed: 2 processes, no bf16, use_cpu."""
    raw = yaml.safe_load((ROOT / "training" / "configs" / "accelerate" / f"{name}.yaml").read_text())
    raw.update(num_processes=2, mixed_precision="no", use_cpu=True)
    if "deepspeed_config" in raw:  # kept equal to train.gradient_accumulation_steps, as the file says
        raw["deepspeed_config"]["gradient_accumulation_steps"] = 1
    path = folder / f"{name}-2cpu.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(
    tmp: Path, name: str, data: Path, *, batch: int, launch: str | None, steps: int = 4, **settings
) -> list[str]:
    """`layered train mmdit` of the tiny i2l config: one process, or two under the accelerate config `launch`."""
    raw = yaml.safe_load((ROOT / "training" / "configs" / "tiny_i2l.yaml").read_text())
    raw["data"].update(path=str(data), batch_size=batch, caption_dropout=0.5)
    raw["train"].update(max_steps=steps, report_to=None, checkpoint_every=2)
    for key, value in settings.items():
        section, field = key.split("__")
        raw.setdefault(section, {})[field] = value
    raw["output_dir"] = str(tmp / name)
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    train = ["-m", "layered", "train", "mmdit", str(config)]
    if launch is None:
        return [sys.executable, *train]
    accelerate = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config(tmp, launch)),
    ]
    return [*accelerate, "--main_process_port", str(free_port()), *train]


ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def umask_022() -> None:
    os.umask(0o022)


def run(cmd: list[str]) -> str:
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400, preexec_fn=umask_022)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def assert_same_weights(ours: Path, reference: Path, **tolerance) -> None:
    """Two pipeline folders hold the same components with the same tensors (within `tolerance`)."""
    for component in ("transformer", "vae", "text_encoder"):
        (weights,) = (ours / component).glob("*.safetensors")
        a, b = load_file(weights), load_file(reference / component / weights.name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], **tolerance)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsdp")
    data = write_shards(tmp / "ds", rows=6, layers=[2, 3])
    printed = run(command(tmp, "two", data, batch=1, launch="fsdp"))
    run(command(tmp, "one", data, batch=2, launch=None))
    return tmp, data, printed


def test_fsdp_writes_once_a_pipeline_that_loads_and_equals_one_process_with_double_batch(runs):
    tmp, _data, printed = runs
    two, one = tmp / "two", tmp / "one"
    assert printed.count("wrote ") == 1  # the main process alone writes the pipeline
    assert losses(two) == pytest.approx(losses(one), rel=1e-4) and len(losses(two)) == 4
    assert files(two / "pipeline") == files(one / "pipeline")  # every component, frozen ones included
    assert (two / "checkpoints" / "checkpoint-4" / "pytorch_model_fsdp_0").is_dir()  # sharded for resume
    assert_same_weights(two / "pipeline", one / "pipeline", rtol=1e-4, atol=1e-5)
    for path in [two / "pipeline", *(two / "pipeline").rglob("*"), *(two / "checkpoints").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path

    from layered.pipeline import LayeredPipeline

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    outputs = []
    for folder in (two, one):
        pipe = LayeredPipeline.from_pretrained(folder / "pipeline")
        pipe.set_progress_bar_config(disable=True)
        outputs.append(decompose(pipe, image))
    assert outputs[0].shape == (2, 32, 32, 4)
    np.testing.assert_allclose(outputs[0], outputs[1], atol=2e-3)


def test_export_pipeline_from_the_sharded_checkpoint(runs):
    tmp, _data, _ = runs
    target = tmp / "exported"
    checkpoint = tmp / "two" / "checkpoints" / "checkpoint-4"
    run([sys.executable, "-m", "training.export_pipeline", str(checkpoint), str(target), "--dtype", "float32"])
    assert files(target) == files(tmp / "two" / "pipeline")
    assert_same_weights(target, tmp / "two" / "pipeline", rtol=0, atol=0)


def _kill_processes_mentioning(text: str) -> int:
    """SIGKILL every live process whose command line contains `text` (the launcher and both workers)."""
    killed = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def test_kill_9_then_resume_gives_the_same_following_losses(runs):
    tmp, data, _ = runs
    cmd = command(tmp, "killed", data, batch=1, launch="fsdp")
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    out = tmp / "killed"
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "checkpoint-2").is_dir():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    assert _kill_processes_mentioning(str(tmp / "killed.yaml")) >= 1
    process.wait(timeout=60)
    assert not (out / "pipeline").exists() and not (out / "checkpoints" / "checkpoint-4").exists()
    printed = run([*command(tmp, "killed", data, batch=1, launch="fsdp"), "--resume"])
    assert "wrote " in printed
    uninterrupted = losses(tmp / "two")
    after = losses(out)
    assert after[-2:] == pytest.approx(uninterrupted[2:], rel=1e-6)


def test_lora_under_fsdp_writes_adapters_that_load(runs):
    tmp, data, _ = runs
    save_base_pipeline(data, tmp / "base")
    lora = {"model__pretrained": str(tmp / "base"), "lora__rank": 4, "train__learning_rate": 1e-2}
    run(command(tmp, "lora_two", data, batch=1, launch="fsdp", steps=2, **lora))
    run(command(tmp, "lora_one", data, batch=2, launch=None, steps=2, **lora))
    a = load_file(tmp / "lora_two" / "lora" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp / "lora_one" / "lora" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)

    from layered.pipeline import LayeredPipeline

    pipe = LayeredPipeline.from_pretrained(tmp / "base")
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    plain = decompose(pipe, image)
    pipe.load_lora_weights(tmp / "lora_two" / "lora")
    assert np.abs(decompose(pipe, image) - plain).max() > 1e-3  # the adapter is there and does something
