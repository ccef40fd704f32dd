"""What the trainers need beyond `Accelerator()`: a checked launch, FSDP on CPU, full weights for saving.

Saving under FSDP / ZeRO-3 is collective: every process takes part in gathering the full state dict, and only
the main process writes. A launch where N processes each come up alone (torchrun without a process group,
e.g. an FSDP config with `use_cpu: true`) would make every process write the same folder; it is refused.
"""

from __future__ import annotations

import os

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


def enable_cpu_fsdp(accelerator) -> bool:
    """Run accelerate's FSDP path on CPU processes (gloo) when FSDP was asked for; accelerate only enables it on GPUs.

    The plugin comes from the same FSDP_* environment `accelerate launch` writes from the config file.
    """
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils import DistributedType

    state = accelerator.state
    wanted = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if not wanted or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    from accelerate.state import PartialState

    # AcceleratorState copies PartialState's fields each time it is built (prepare() does), so set both.
    PartialState().distributed_type = state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    return True


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


def unpartitioned_init(accelerator):
    """A context where models are built whole even under ZeRO-3's `zero3_init_flag` (for the frozen parts)."""
    import contextlib

    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None or not plugin.is_zero3_init_enabled():
        return contextlib.nullcontext()
    return plugin.zero3_init_context_manager(enable=False)
