"""Training configuration: a YAML file read into nested dataclasses; CLI flags override it.

Unknown keys and wrong types are input errors (a typo in a config must not silently train the wrong thing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layered.errors import InputError

STAGES = ("t2rgba", "t2l", "i2l")
TASKS = ("vae", "mmdit", "peel")  # the trainers of training.cli.TRAINERS, in the same order
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


@dataclass
class DataConfig:
    path: str | None = None  # folder of Parquet shards (what `layered psd build` writes)
    resolution: int = 640  # bucket area = resolution**2 pixels, sides multiples of `multiple`
    bucket_ratios: list[float] = field(default_factory=lambda: [1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16])
    multiple: int = 16  # VAE scale factor x transformer patch size
    max_layers: int = 20  # rows with more layers have their bottom layers merged (composite unchanged)
    batch_size: int = 1  # per process
    caption_dropout: float = 0.1  # probability of the empty caption (classifier-free guidance)
    cache: str | None = None  # folder of cached VAE latents and text embeddings (`training.cache`)
    held_out: int = 0  # rows kept out of training for periodic evaluation
    stats_rows: int = 256  # training rows whose latents set the VAE's latents_mean/std at the end of `train vae`
    synth: dict[str, Any] | None = None  # peel: designs drawn on the fly (training.peel_data.SynthOptions fields)


@dataclass
class ModelConfig:
    pretrained: str | None = None  # diffusers pipeline folder: text encoder, tokenizer, scheduler (and weights)
    init_from: str | None = None  # previous stage's output folder: the transformer starts from it
    vae: str | None = None  # RGBA-VAE folder (a pipeline folder with vae/, or the vae folder itself)
    rgb_vae: str | None = None  # VAE training: an RGB VAE turned into the RGBA-VAE by channel surgery
    transformer: dict[str, Any] | None = None  # QwenImageTransformer2DModel config for a from-scratch model
    vae_config: dict[str, Any] | None = None  # AutoencoderKLQwenImage config for a from-scratch VAE
    text_encoder: dict[str, Any] | None = None  # tiny Qwen2.5-VL text config, built in code (no download)
    peel: dict[str, Any] | None = None  # PeelNet config (layered.peel_model) for a from-scratch peel network


@dataclass
class TrainConfig:
    max_steps: int = 1000
    learning_rate: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    lr_warmup_steps: int = 0
    lr_scheduler: str = "constant_with_warmup"  # a diffusers get_scheduler name: cosine, linear, ...
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False
    weighting_scheme: str = "logit_normal"  # diffusers.training_utils schemes
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    checkpoint_every: int = 500  # and at max_steps (training.loop)
    checkpoints_total_limit: int = 2
    log_every: int = 10  # TensorBoard cadence; logs/metrics.jsonl gets every step (training.loop)
    report_to: str | None = "tensorboard"  # or None
    overfit_batch: bool = False  # debugging: train on step 0's batch (same rows, noise, timesteps) every step


@dataclass
class LoraConfigSection:
    rank: int = 0  # 0: full fine-tuning
    alpha: float | None = None  # default: rank
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: [
            "to_q",
            "to_k",
            "to_v",
            "to_out.0",
            "add_q_proj",
            "add_k_proj",
            "add_v_proj",
            "to_add_out",
            "img_mlp.net.0.proj",
            "img_mlp.net.2",
            "txt_mlp.net.0.proj",
            "txt_mlp.net.2",
        ]
    )


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: float = 0.999
    update_after_step: int = 0


@dataclass
class VaeLossConfig:
    l1: float = 1.0  # L1 on RGBA
    composite_l1: float = 1.0  # L1 of RGB composited over a random solid background
    perceptual: float = 0.0  # LPIPS weight (needs the optional `lpips` package)
    kl: float = 1e-6
    rgb_fraction: float = 0.5  # share of samples that are opaque RGB images (alpha 1)
    reconstruction: str = "l1"  # "l1" or "mse" for the two pixel terms (mse escapes the mean-image plateau faster)
    sample_posterior: bool = True  # decode a posterior sample; false decodes the mode (a plain autoencoder + KL)
    thumbnail: float = 0.0  # weight of the anchor pulling latent channels 0-3 to the input pooled to the latent grid
    foreground: float = 0.0  # extra pixel-loss weight on each sample's visible pixels (+2 px), over their share


@dataclass
class EvalConfig:
    every: int = 0  # steps between held-out evaluations (0: never)
    steps: int = 20  # denoising steps of the sample decompositions
    max_merge: int = 5


@dataclass
class Config:
    task: str = "mmdit"
    stage: str = "i2l"
    output_dir: str = "runs/train"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfigSection = field(default_factory=LoraConfigSection)
    ema: EmaConfig = field(default_factory=EmaConfig)
    vae_loss: VaeLossConfig = field(default_factory=VaeLossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise InputError(f"config: {where or 'top level'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"config: unknown key(s) {', '.join(unknown)} in {where or 'top level'}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{where}.{name}".lstrip("."))
        else:
            kwargs[name] = _coerce(value, default, f"{where}.{name}".lstrip("."))
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"config: {where} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        try:  # YAML reads 1e-5 as a string; accept numbers written either way
            number = float(value) if isinstance(default, float) else int(value)
        except (TypeError, ValueError):
            raise InputError(f"config: {where} must be a number, got {value!r}") from None
        return number
    if isinstance(default, str) and not isinstance(value, str):
        raise InputError(f"config: {where} must be a string, got {value!r}")
    if isinstance(default, list) and not isinstance(value, list):
        raise InputError(f"config: {where} must be a list, got {value!r}")
    return value


def validate(config: Config) -> Config:
    """Check the values that the training loops rely on; raise InputError with the offending key."""
    if config.task not in TASKS:
        raise InputError(f"config: task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.stage not in STAGES:
        raise InputError(f"config: stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.train.mixed_precision not in ("no", "bf16", "fp16"):
        raise InputError(
            f"config: train.mixed_precision must be no, bf16 or fp16, got {config.train.mixed_precision!r}"
        )
    checks = [
        (config.data.resolution >= config.data.multiple, "data.resolution must be at least data.multiple"),
        (config.data.resolution % config.data.multiple == 0, "data.resolution must be a multiple of data.multiple"),
        (config.data.batch_size >= 1, "data.batch_size must be >= 1"),
        (config.data.max_layers >= 1, "data.max_layers must be >= 1"),
        (0.0 <= config.data.caption_dropout <= 1.0, "data.caption_dropout must be in [0, 1]"),
        (len(config.data.bucket_ratios) > 0, "data.bucket_ratios must not be empty"),
        (config.train.max_steps >= 0, "train.max_steps must be >= 0"),
        (config.train.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps must be >= 1"),
        (config.train.checkpoint_every >= 1, "train.checkpoint_every must be >= 1"),
        (config.lora.rank >= 0, "lora.rank must be >= 0"),
        (config.vae_loss.reconstruction in ("l1", "mse"), "vae_loss.reconstruction must be l1 or mse"),
        (config.train.lr_scheduler in LR_SCHEDULERS, f"train.lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(f"config: {message}")
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config and apply dotted-key overrides ({"train.max_steps": 10}); None values are skipped."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> Config:
    """Build and validate a Config from a plain dict plus dotted-key overrides."""
    raw = _deep_copy(raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) or part not in node else node[part]
        node[leaf] = value
    return validate(_build(Config, raw, ""))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
