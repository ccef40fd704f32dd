"""A training checkpoint small enough to commit and free of pickle, for runs resumed across sessions.

`pack` turns an accelerate checkpoint (`checkpoint-STEP/`: model.safetensors, optimizer.bin, the EMA as
custom_checkpoint_0.pkl, the lr scheduler) into `model.safetensors` (fp32 weights), `optimizer.safetensors`
(Adam moments in bfloat16: half the size, and the exponent range of fp32 that tiny second moments need; the
param groups as JSON metadata; where that would take the pack past `MAX_PACKED_BYTES`, the repository's limit
for a committed checkpoint, the moments go in 8 bits, `_compact`), `ema.safetensors` when the run keeps an EMA,
`states.json` (the scheduler) and `training_state.json` (the step, which fixes the data position: batches are a
function of the step). `unpack` writes the accelerate folder back, so `layered train ... --resume` continues
from it.

    python -m training.portable pack runs/demo_v2_vae training/runs/demo_v2/vae
    python -m training.portable unpack training/runs/demo_v2/vae runs/demo_v2_vae
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from layered.errors import LayeredError

MOMENTS_DTYPE = "bfloat16"
MAX_PACKED_BYTES = 20_000_000  # a committed checkpoint is at most 20 MB
BLOCK = 256  # 8-bit first moments: one scale per this many values
_EMA_TENSORS = "shadow_params"


def pack(output_dir: str | Path, dest: str | Path, extra: dict | None = None) -> Path:
    """Pack the newest complete checkpoint of a run into `dest` (replaced as a whole, atomically)."""
    import torch
    from safetensors.torch import load_file, save_file

    from layered.fileio import atomic_dir
    from training import checkpoint as ckpt

    found = ckpt.latest_checkpoint(output_dir)
    if found is None:
        raise LayeredError(f"no complete checkpoint under {Path(output_dir) / 'checkpoints'}")
    step, folder = found
    state = ckpt.read_state(folder)
    optimizer = torch.load(folder / "optimizer.bin", map_location="cpu", weights_only=True)
    moments, scalars = {}, {}
    for index, values in optimizer["state"].items():
        for name, value in values.items():
            if value.numel() == 1 and name == "step":
                scalars[f"{index}.{name}"] = float(value)
            else:
                moments[f"{index}.{name}"] = value.to(getattr(torch, MOMENTS_DTYPE)).contiguous()
    dest = Path(dest)
    if dest.exists() and not (dest / "training_state.json").is_file():
        raise LayeredError(f"{dest} exists and is not a packed checkpoint: not replacing it")
    weights = load_file(folder / "model.safetensors")
    metadata = {"param_groups": json.dumps(optimizer["param_groups"]), "steps": json.dumps(scalars)}
    size = sum(t.numel() * t.element_size() for t in [*weights.values(), *moments.values()])
    if size > MAX_PACKED_BYTES:
        moments = _compact(moments)
        metadata["moments"] = "8bit"
    with atomic_dir(dest) as tmp:
        save_file(weights, tmp / "model.safetensors")
        save_file(moments, tmp / "optimizer.safetensors", metadata=metadata)
        ema_file = folder / "custom_checkpoint_0.pkl"
        if ema_file.exists():
            _pack_ema(ema_file, tmp / "ema.safetensors")
        (tmp / "states.json").write_text(json.dumps(_small_states(folder), indent=1))
        (tmp / "training_state.json").write_text(json.dumps({**state, "step": step, **(extra or {})}, indent=1))
    return dest


def _compact(moments: dict) -> dict:
    """Adam moments in 8 bits: a first moment (signed) as int8 times a scale per `BLOCK` values (its largest
    magnitude); a second moment (>= 0, spanning many octaves) as the uint8 step of its log2 on the tensor's own
    log range, 0 for an exact zero (so no tiny second moment turns into a zero that would blow up its update)."""
    import torch

    out = {}
    for key, value in moments.items():
        flat = value.float().flatten()
        out[f"{key}.shape"] = torch.tensor(list(value.shape), dtype=torch.int64)  # Adam's moments are never 0-d
        if key.endswith("exp_avg_sq"):
            positive = flat > 0
            logs = torch.log2(flat[positive]) if positive.any() else torch.zeros(1)
            low, high = float(logs.min()), max(float(logs.max()), float(logs.min()) + 1e-6)
            code = torch.zeros_like(flat)
            code[positive] = 1 + torch.round((logs - low) / (high - low) * 254)
            out[f"{key}.log2"] = code.to(torch.uint8)
            out[f"{key}.range"] = torch.tensor([low, high])
        else:
            blocks = torch.nn.functional.pad(flat, (0, -flat.numel() % BLOCK)).view(-1, BLOCK)
            scale = blocks.abs().amax(dim=1).clamp_min(1e-38)
            out[f"{key}.int8"] = torch.round(blocks / scale[:, None] * 127).to(torch.int8).flatten()
            out[f"{key}.scale"] = scale
    return out


def _expand(tensors: dict) -> dict:
    """The moments `_compact` stored, back in float32."""
    import torch

    out = {}
    for key in [k[: -len(".shape")] for k in tensors if k.endswith(".shape")]:
        shape = [int(n) for n in tensors[f"{key}.shape"]]
        if f"{key}.log2" in tensors:
            code = tensors[f"{key}.log2"].float()
            low, high = (float(v) for v in tensors[f"{key}.range"])
            value = torch.where(code > 0, torch.exp2(low + (code - 1) / 254 * (high - low)), torch.zeros_like(code))
        else:
            blocks = tensors[f"{key}.int8"].float().view(-1, BLOCK) / 127 * tensors[f"{key}.scale"][:, None]
            value = blocks.flatten()[: math.prod(shape)]
        out[key] = value.view(shape)
    return out


def _small_states(folder: Path) -> dict[str, dict]:
    """The other `.bin` states of a checkpoint (the lr scheduler's), which are plain numbers, as JSON."""
    import torch

    skipped = {"optimizer.bin"}
    states = {}
    for path in sorted(folder.glob("*.bin")):
        if path.name not in skipped:
            states[path.name] = torch.load(path, map_location="cpu", weights_only=True)
    try:
        json.dumps(states)
    except TypeError as error:
        raise LayeredError(f"cannot pack {folder}: a state holds more than plain numbers ({error})") from None
    return states


def _pack_ema(source: Path, target: Path) -> None:
    # Our own EMA file; its tensors and plain numbers load with weights_only=True.
    import torch
    from safetensors.torch import save_file

    ema = torch.load(source, map_location="cpu", weights_only=True)
    tensors = {f"{_EMA_TENSORS}.{i}": t.contiguous() for i, t in enumerate(ema.pop(_EMA_TENSORS))}
    save_file(tensors, target, metadata={"config": json.dumps(ema)})


def unpack(packed: str | Path, output_dir: str | Path) -> Path:
    """Write `packed` back as `output_dir/checkpoints/checkpoint-STEP` for `--resume`."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from layered.ownership import check_output_folder, mark_output_folder
    from training import checkpoint as ckpt
    from training.cli import TRAIN_MARKER

    packed = Path(packed)
    if not (packed / "training_state.json").is_file():
        raise LayeredError(f"not a packed checkpoint (no training_state.json): {packed}")
    check_output_folder(output_dir, TRAIN_MARKER)  # a user's folder is refused, as `layered train` refuses it
    state = json.loads((packed / "training_state.json").read_text())
    step = int(state["step"])
    final = ckpt.checkpoint_dir(output_dir) / f"checkpoint-{step}"
    tmp = final.with_name(f".tmp-{final.name}")
    if final.exists():
        raise LayeredError(f"{final} exists already: resume from it, or move it away first")
    mark_output_folder(output_dir, TRAIN_MARKER, "train")  # so that `layered train --resume` takes it as ours
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(packed / "model.safetensors", tmp / "model.safetensors")
    with safe_open(packed / "optimizer.safetensors", "pt") as f:
        metadata = f.metadata()
    moments = load_file(packed / "optimizer.safetensors")
    if metadata.get("moments") == "8bit":
        moments = _expand(moments)
    optimizer_state: dict[int, dict] = {}
    for key, value in moments.items():
        index, name = key.split(".", 1)
        optimizer_state.setdefault(int(index), {})[name] = value.float()
    for key, value in json.loads(metadata["steps"]).items():
        index, name = key.split(".", 1)
        optimizer_state.setdefault(int(index), {})[name] = torch.tensor(value)
    groups = json.loads(metadata["param_groups"])
    torch.save({"state": optimizer_state, "param_groups": groups}, tmp / "optimizer.bin")
    if (packed / "ema.safetensors").exists():
        with safe_open(packed / "ema.safetensors", "pt") as f:
            config = json.loads(f.metadata()["config"])
        tensors = load_file(packed / "ema.safetensors")
        shadow = [tensors[f"{_EMA_TENSORS}.{i}"] for i in range(len(tensors))]
        torch.save({**config, _EMA_TENSORS: shadow}, tmp / "custom_checkpoint_0.pkl")
    states_file = packed / "states.json"
    for name, value in (json.loads(states_file.read_text()) if states_file.exists() else {}).items():
        torch.save(value, tmp / Path(name).name)
    (tmp / "training_state.json").write_text(json.dumps(state))
    tmp.rename(final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.portable", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source", help="pack: a run's output folder; unpack: a packed checkpoint")
    parser.add_argument("dest", help="pack: the packed folder (replaced); unpack: the run's output folder")
    args = parser.parse_args(argv)
    try:
        result = (pack if args.action == "pack" else unpack)(args.source, args.dest)
    except (LayeredError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
