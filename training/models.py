"""Building and loading the diffusers components a training run needs (LoRA adapters included), and the pipeline
of a trained run or checkpoint.

Sources, in order: `model.init_from` (previous stage), `model.pretrained` (a pipeline folder such as
Qwen/Qwen-Image-Layered), then a config dict (tiny models built in code: nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from layered.errors import InputError, LayeredError
from training.config import Config

# Qwen-Image's scheduler settings (scheduler_config.json of the released pipelines).
SCHEDULER_CONFIG = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 8192,
    "max_shift": 0.9,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.02,
    "time_shift_type": "exponential",
    "use_dynamic_shifting": True,
}
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
SPECIAL_TOKENS += ["<|image_pad|>", "<|video_pad|>"]


def resolve_source(folder: str | Path | None) -> Path | None:
    """A pipeline folder, or a training output folder (its `pipeline/` inside)."""
    if not folder:
        return None
    folder = Path(folder)
    return folder / "pipeline" if (folder / "pipeline" / "model_index.json").is_file() else folder


def component_dir(folder: str | Path, name: str) -> Path:
    """`folder/name` when `folder` is a pipeline folder, else `folder` itself (a bare component folder)."""
    folder = resolve_source(folder)
    if not folder.is_dir():
        raise InputError(f"model folder not found: {folder}")
    if (folder / name / "config.json").is_file():
        return folder / name
    if (folder / "config.json").is_file():
        return folder
    raise InputError(f"{folder} has neither {name}/config.json nor config.json")


def _with_component(config: Config, name: str) -> Path | None:
    """The first of init_from, pretrained that is a pipeline folder holding `name`."""
    for source in (resolve_source(config.model.init_from), resolve_source(config.model.pretrained)):
        if source and (source / name).is_dir():
            return source
    return None


def tiny_tokenizer():
    """A byte-level Qwen2 tokenizer built in code (256 byte tokens + the chat special tokens, no merges)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    return tokenizer


def tiny_text_encoder(settings: dict[str, Any], seed: int = 0):
    """A small random Qwen2.5-VL (same class as the real text encoder) and its tokenizer."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = tiny_tokenizer()
    hidden = int(settings.get("hidden_size", 32))
    heads = int(settings.get("num_attention_heads", 2))
    head_dim = hidden // heads
    third = head_dim // 2 // 4
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": int(settings.get("intermediate_size", 2 * hidden)),
        "num_hidden_layers": int(settings.get("num_hidden_layers", 2)),
        "num_attention_heads": heads,
        "num_key_value_heads": int(settings.get("num_key_value_heads", 1)),
        "max_position_embeddings": 4096,
        "rope_scaling": {"type": "mrope", "mrope_section": [head_dim // 2 - 2 * third, third, third]},
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }
    vision_config = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden}
    ids = {name: tokenizer.convert_tokens_to_ids(f"<|{name}|>") for name in ("image_pad", "video_pad")}
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_pad"],
        video_token_id=ids["video_pad"],
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    return model.eval(), tokenizer


def load_text_components(config: Config):
    """(text_encoder, tokenizer, processor) from the pretrained pipeline folder or the tiny config."""
    source = _with_component(config, "text_encoder")
    if source:
        from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        text_encoder = Qwen2_5_VLForConditionalGeneration.from_pretrained(Path(source) / "text_encoder")
        tokenizer = AutoTokenizer.from_pretrained(Path(source) / "tokenizer")
        processor = None
        if (Path(source) / "processor").is_dir():
            try:  # the captioning processor is optional (it needs torchvision)
                processor = AutoProcessor.from_pretrained(Path(source) / "processor")
            except Exception:
                processor = None
        return text_encoder.eval(), tokenizer, processor
    if config.model.text_encoder is not None:
        text_encoder, tokenizer = tiny_text_encoder(config.model.text_encoder, seed=config.seed)
        return text_encoder, tokenizer, None
    raise InputError("config: set model.pretrained (a pipeline folder with text_encoder/) or model.text_encoder")


def load_scheduler(config: Config):
    from diffusers import FlowMatchEulerDiscreteScheduler

    source = _with_component(config, "scheduler")
    if source:
        return FlowMatchEulerDiscreteScheduler.from_pretrained(source, subfolder="scheduler")
    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)


def load_vae(config: Config):
    """The RGBA-VAE: `model.vae` folder, else the pretrained pipeline's vae, else `model.vae_config`."""
    from diffusers import AutoencoderKLQwenImage

    folder = component_dir(config.model.vae, "vae") if config.model.vae else None
    for source in (resolve_source(config.model.init_from), resolve_source(config.model.pretrained)):
        if folder is None and source and (source / "vae" / "config.json").is_file():
            folder = source / "vae"
    if folder is not None:
        vae = AutoencoderKLQwenImage.from_pretrained(folder)
    else:
        if config.model.vae_config is None:
            raise InputError("config: set model.vae (an RGBA-VAE folder), model.pretrained or model.vae_config")
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            vae = AutoencoderKLQwenImage(**config.model.vae_config)
    if vae.config.input_channels != 4:
        raise InputError(f"the VAE has {vae.config.input_channels} input channels; the RGBA-VAE needs 4")
    return vae


def load_transformer(config: Config):
    """The VLD-MMDiT: previous stage, else pretrained, else a from-scratch model of `model.transformer`."""
    from diffusers import QwenImageTransformer2DModel

    lora = lora_folder(config.model.init_from)
    for source in (None if lora else config.model.init_from, config.model.pretrained):
        if source:
            model = QwenImageTransformer2DModel.from_pretrained(component_dir(source, "transformer"))
            break
    else:
        if config.model.transformer is None:
            raise InputError("config: set model.init_from, model.pretrained or model.transformer")
        settings = {**config.model.transformer, "use_layer3d_rope": True, "use_additional_t_cond": True}
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            model = QwenImageTransformer2DModel(**settings)
    if not (model.config.use_layer3d_rope and model.config.use_additional_t_cond):
        raise InputError("the transformer must have use_layer3d_rope and use_additional_t_cond (a VLD-MMDiT)")
    if lora is not None:  # the previous stage trained LoRA: its adapter is merged into the base weights
        from diffusers import QwenImageLayeredPipeline

        QwenImageLayeredPipeline.load_lora_into_transformer(
            QwenImageLayeredPipeline.lora_state_dict(str(lora)), transformer=model
        )
        model.fuse_lora()
        model.unload_lora()
    return model


def lora_folder(init_from: str | Path | None) -> Path | None:
    """The LoRA folder of a previous LoRA stage (OUTPUT/lora, or the folder itself), else None."""
    if not init_from:
        return None
    for folder in (Path(init_from) / "lora", Path(init_from)):
        if (folder / "pytorch_lora_weights.safetensors").is_file():
            return folder
    return None


def build_pipeline(*, resolution: int | None = None, **components):
    """A `layered.LayeredPipeline` of trained `components` (as its constructor names them) at its working size."""
    from layered.pipeline import LayeredPipeline

    return LayeredPipeline(**components, default_resolution=resolution or 640)


def save_pipeline(pipeline, folder: str | Path) -> None:
    """Write a diffusers pipeline folder (safetensors only) atomically."""
    from layered.fileio import atomic_dir

    with atomic_dir(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)


def setup_lora(transformer, config: Config) -> None:
    """Freeze the transformer and add a peft LoRA adapter on the attention and MLP projections."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha or config.lora.rank,
            lora_dropout=config.lora.dropout,
            init_lora_weights="gaussian",
            target_modules=config.lora.target_modules,
        )
    )


def pipeline_from_checkpoint(folder: str | Path):
    """A `LayeredPipeline` of an MMDiT checkpoint: its transformer weights and the run's frozen parts (VAE, text).

    The run's config is stored in the checkpoint's training_state.json; a LoRA run's adapter is fused in.
    """
    from training.checkpoint import checkpoint_weights, read_state
    from training.config import config_from_dict

    folder = Path(folder)
    try:
        raw = read_state(folder)["config"]
    except (OSError, ValueError, KeyError):
        raise LayeredError(f"{folder}: not an MMDiT checkpoint (no config in training_state.json)") from None
    config = config_from_dict(raw)
    if config.task != "mmdit":
        raise LayeredError(f"{folder}: a {config.task} checkpoint; only MMDiT checkpoints become pipelines")
    weights = checkpoint_weights(folder)
    transformer = load_transformer(config)
    if config.lora.rank > 0:
        setup_lora(transformer, config)
    transformer.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    if config.lora.rank > 0:
        transformer.fuse_lora()
        transformer.unload_lora()
    text_encoder, tokenizer, processor = load_text_components(config)
    return build_pipeline(
        transformer=transformer.float(),
        vae=load_vae(config),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=processor,
        scheduler=load_scheduler(config),
        resolution=config.data.resolution,
    )
