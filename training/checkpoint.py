"""Checkpoints: `accelerator.save_state` into a temporary folder, renamed to `checkpoint-STEP` when complete.

A kill -9 mid-write leaves only a `.tmp-*` folder, which `latest_checkpoint` ignores, so the last good
checkpoint stays the one `--resume` picks up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from layered.errors import LayeredError
from layered.fileio import follow_umask

_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, folder), oldest first."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and (path / "training_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> tuple[int, Path] | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep: int, extra: dict | None = None) -> Path:
    """Save the accelerate state at `step` (all processes call this); keep the newest `keep` checkpoints."""
    folder = checkpoint_dir(output_dir)
    final = folder / f"checkpoint-{step}"
    tmp = folder / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # Written last: its presence marks the folder complete (list_checkpoints requires it).
        (tmp / "training_state.json").write_text(json.dumps({"step": step, **(extra or {})}))
        follow_umask(tmp)  # accelerate's safetensors files come out 0600
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def read_state(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "training_state.json").read_text())


def checkpoint_weights(folder: str | Path) -> dict:
    """The trained model's full state dict from a checkpoint: one `model.safetensors`, or FSDP's sharded folder."""
    import tempfile

    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model_fsdp_0").is_dir():
        from accelerate.utils import merge_fsdp_weights

        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:  # one process, no process group needed
            merge_fsdp_weights(str(folder / "pytorch_model_fsdp_0"), tmp, safe_serialization=True)
            return load_file(Path(tmp) / "model.safetensors")
    if (folder / "pytorch_model").is_dir():
        raise LayeredError(
            f"{folder}: a DeepSpeed checkpoint; turn it into model.safetensors first with the zero_to_fp32.py "
            "script DeepSpeed writes beside it"
        )
    raise LayeredError(f"{folder}: no model weights (model.safetensors or pytorch_model_fsdp_0/)")
