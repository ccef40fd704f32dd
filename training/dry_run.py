"""`--dry-run`: build the transformer on the meta device (no memory, no weights) and estimate a run's size.

Parameter counts come from the model class itself. Memory per GPU is an estimate (weights + gradients +
AdamW states by strategy, plus activations with gradient checkpointing); it leaves out fragmentation,
communication buffers and the frozen text encoder / VAE, which the latent cache removes from the GPU step.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.config import Config

GPU_COUNTS = (1, 8, 64)
GIB = 1024**3


def transformer_config(config: Config) -> dict:
    """The transformer's config: a local pretrained folder's, the config's, else the class defaults (Qwen-Image)."""
    from training.models import resolve_source

    for source in (config.model.init_from, config.model.pretrained):
        folder = resolve_source(source)
        if folder and (folder / "transformer" / "config.json").is_file():
            raw = json.loads((folder / "transformer" / "config.json").read_text())
            return {k: v for k, v in raw.items() if not k.startswith("_")}
    return dict(config.model.transformer or {})


def lora_params(model, target_modules: list[str], rank: int) -> int:
    """Trainable LoRA parameters peft adds: rank * (in + out) for each targeted Linear."""
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in target_modules):
            total += rank * (module.in_features + module.out_features)
    return total


def memory_estimates(params: int, trainable: int, lora: bool, activations: float) -> dict[str, dict[str, float]]:
    """GiB per GPU for each strategy and GPU count (bf16 compute weights, fp32 master weights/grads, AdamW)."""
    out: dict[str, dict[str, float]] = {}
    for strategy in ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"):
        out[strategy] = {}
        for n in GPU_COUNTS:
            if lora:  # frozen bf16 base + fp32 adapter weights, grads and two Adam moments
                frozen, state = 2 * params, 16 * trainable
                sharded_frozen = strategy in ("fsdp", "deepspeed_zero3")
                sharded_state = strategy != "ddp"
                total = frozen / (n if sharded_frozen else 1) + state / (n if sharded_state else 1)
            elif strategy == "ddp":  # fp32 weights + fp32 grads + Adam (8 bytes) replicated
                total = 16 * params
            elif strategy == "deepspeed_zero2":  # bf16 weights replicated; grads + fp32 master + Adam sharded
                total = 2 * params + (2 + 12) * params / n
            else:  # fsdp full shard, ZeRO-3: everything sharded
                total = 16 * params / n
            out[strategy][str(n)] = round((total + activations) / GIB, 1)
    return out


def dry_run(config: Config) -> dict:
    """One JSON-able dict: parameter counts, tokens per sample, and memory per GPU per strategy."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import QwenImageTransformer2DModel

    settings = {**transformer_config(config), "use_layer3d_rope": True, "use_additional_t_cond": True}
    with init_empty_weights():
        model = QwenImageTransformer2DModel(**settings)
    params = sum(p.numel() for p in model.parameters())
    lora = config.lora.rank > 0
    trainable = lora_params(model, config.lora.target_modules, config.lora.rank) if lora else params
    cfg = model.config
    side = config.data.resolution // config.data.multiple  # tokens per side of one frame (8x VAE, 2x2 patches)
    frames = 1 if config.stage == "t2rgba" else config.data.max_layers + 1
    cond_tokens = side * side if config.stage == "i2l" else 1
    tokens = frames * side * side + cond_tokens
    text_tokens = 256  # a typical long caption after the template prefix is dropped
    inner = cfg.num_attention_heads * cfg.attention_head_dim
    # Gradient checkpointing keeps each block's inputs (image + text streams, bf16) plus one block recomputed
    # (about 12 hidden-size tensors: norms, q/k/v, attention output, the 4x MLP) for batch 1.
    seq = tokens + text_tokens
    if config.train.gradient_checkpointing:
        activations = seq * inner * 2 * (2 * cfg.num_layers + 12)
    else:
        activations = seq * inner * 2 * 16 * cfg.num_layers
    activations *= config.data.batch_size
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {
        "stage": config.stage,
        "transformer_params": params,
        "trainable_params": trainable,
        "lora_rank": config.lora.rank,
        "resolution": config.data.resolution,
        "max_layers": config.data.max_layers,
        "tokens_per_sample": tokens,
        "text_tokens_assumed": text_tokens,
        "batch_size_per_gpu": config.data.batch_size,
        "gradient_checkpointing": config.train.gradient_checkpointing,
        "activations_gib": round(activations / GIB, 1),
        "memory_gib_per_gpu": memory_estimates(params, trainable, lora, activations),
    }


def main(path: str) -> None:  # pragma: no cover - convenience for `python -m training.dry_run CONFIG`
    from training.config import load_config

    print(json.dumps(dry_run(load_config(Path(path)))))


if __name__ == "__main__":  # pragma: no cover
    import sys

    main(sys.argv[1])
