"""What the trainers need beyond `Accelerator()`: a checked launch, FSDP on CPU, full weights for saving.

Saving under FSDP / ZeRO-3 is collective: every process takes part in gathering the full state dict, and only
the main process writes. A launch where N processes each come up alone (torchrun without a process group,
e.g. an FSDP config with `use_cpu: true`) would make every process write the same folder; it is refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from layered.errors import InputError


def use_cpu_group_without_accelerator() -> None:
    """N processes launched on a machine without GPUs join one gloo group (accelerate otherwise runs each alone).

    `accelerate launch` with a config file starts torchrun but does not pass the file's `use_cpu` on; call this
    before the first `Accelerator()`.
    """
    import torch

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and not torch.accelerator.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def check_launch(accelerator) -> None:
    """Refuse N launched processes that did not form one process group (each would train and write alone)."""
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and accelerator.num_processes != launched:
        raise InputError(
            f"launched as {launched} processes, but accelerate runs them as {accelerator.num_processes} "
            "(no GPU found: on CPU set ACCELERATE_USE_CPU=true or pass `accelerate launch --cpu`)"
        )


def enable_cpu_sharding(accelerator, batch_size: int) -> str | None:
    """Run accelerate's FSDP or DeepSpeed path on CPU processes (gloo) when the launch asked for it; None otherwise.

    accelerate enables both on GPUs only (on CPU it falls back to plain DDP); the plugins come from the same
    environment `accelerate launch` writes from the config file. DeepSpeed also gets the per-process batch size,
    which accelerate reads from a dataloader the trainers do not use (GPU runs too).
    """
    from accelerate import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    state = accelerator.state
    asked = {k: os.environ.get(f"ACCELERATE_USE_{k.upper()}", "false").lower() == "true" for k in ("fsdp", "deepspeed")}
    chosen = None
    if state.distributed_type == DistributedType.MULTI_CPU and asked["fsdp"]:
        state.fsdp_plugin = FullyShardedDataParallelPlugin()
        chosen = DistributedType.FSDP
    elif state.distributed_type == DistributedType.MULTI_CPU and asked["deepspeed"]:
        plugin = DeepSpeedPlugin()
        plugin.set_mixed_precision(state.mixed_precision)
        plugin.select(_from_accelerator_state=True)
        state.deepspeed_plugins = plugin
        chosen = DistributedType.DEEPSPEED
    if chosen is not None:
        # AcceleratorState copies PartialState's fields each time it is built (prepare() does), so set both.
        PartialState().distributed_type = state.distributed_type = chosen
    plugin = getattr(state, "deepspeed_plugin", None) if accelerator.distributed_type == "DEEPSPEED" else None
    if plugin is not None and plugin.deepspeed_config.get("train_micro_batch_size_per_gpu") in (None, "auto"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = batch_size
    return chosen


def is_sharded(accelerator) -> bool:
    """Whether the trained weights live in pieces across processes (FSDP, ZeRO-3)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return accelerator.distributed_type == DistributedType.DEEPSPEED and plugin is not None and plugin.zero_stage == 3


def full_state_dict(accelerator, model) -> dict | None:
    """The full (unsharded) state dict of a prepared model on the main process, None elsewhere.

    Every process must call it: under FSDP and ZeRO-3 the gathering is collective.
    """
    state = accelerator.get_state_dict(model, unwrap=True)
    return state if accelerator.is_main_process else None


def whole_model(accelerator, model, weights: dict):
    """`model` when it holds its full weights, else an unsharded copy (class, config, adapters) made of `weights`."""
    import torch
    from accelerate import init_empty_weights

    if not is_sharded(accelerator):
        return model
    base = next(c for c in type(model).__mro__ if c.__module__.startswith("diffusers."))  # FSDP2 subclasses it
    with init_empty_weights():
        copy = base.from_config(model.config)
        for name, adapter in (getattr(model, "peft_config", None) or {}).items():
            copy.add_adapter(adapter, adapter_name=name)
    copy.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()}, strict=True, assign=True)
    return copy.requires_grad_(False)


@contextlib.contextmanager
def unpartitioned_init(accelerator) -> Iterator[None]:
    """Build models whole under ZeRO-3 (for the frozen parts, which never go to DeepSpeed and are saved as built).

    transformers partitions every model it builds while a ZeRO-3 config is registered (`zero3_init_flag` or not).
    """
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()
