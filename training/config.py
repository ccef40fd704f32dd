"""Training configuration: a YAML file read into nested dataclasses; CLI flags override it.

Unknown keys and wrong types are input errors (a typo in a config must not silently train the wrong thing).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
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


def _build(cls: type, values: Any, where: str) -> Any:
    """One config section (a dataclass) from a mapping, each value checked against its field's annotation."""
    if not isinstance(values, dict):
        raise InputError(f"config: {where or 'top level'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in set(values) - set(fields))
    if unknown:
        raise InputError(f"config: unknown key(s) {', '.join(unknown)} in {where or 'top level'}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _convert(value, hints[name], f"{where}.{name}".lstrip(".")) for name, value in values.items()})


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """`value` as the type `annotation` names (int, float, bool, str, list[X], dict[K, V], X | None, a section)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, annotation, where)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, {} if value is None else value, where)  # an empty section: its defaults
    if origin is list:
        if not isinstance(value, list):
            _refuse(where, annotation, value)
        return [_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            _refuse(where, annotation, value)
        key_type, item_type = args or (Any, Any)
        return {
            _convert(key, key_type, f"{where} (a key)"): _convert(item, item_type, f"{where}.{key}")
            for key, item in value.items()
        }
    if annotation in _SCALARS:
        return _convert_scalar(value, annotation, where)
    raise TypeError(f"config field {where}: the reader does not know the annotation {annotation!r}")


def _convert_union(value: Any, annotation: Any, where: str) -> Any:
    """`X | None`: None, or a valid X; `X | Y`: the first option that takes the value."""
    args = typing.get_args(annotation)
    if value is None and type(None) in args:
        return None
    options = [arg for arg in args if arg is not type(None)]
    if len(options) == 1:  # the option's own message: "must be an integer, got 10.5"
        return _convert(value, options[0], where)
    for option in options:
        try:
            return _convert(value, option, where)
        except InputError:
            continue
    _refuse(where, annotation, value)


def _convert_scalar(value: Any, annotation: type, where: str) -> Any:
    """bool, int, str as they are (a bool is no integer, 10.5 no int); an int or a numeric string for a float.

    YAML 1.1 reads `1e-5` (no dot) as a string, so a float field parses a string that is a number.
    """
    if annotation is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            _refuse(where, annotation, value)
    accepted = (int, float) if annotation is float else annotation
    if not isinstance(value, accepted) or (annotation is not bool and isinstance(value, bool)):
        _refuse(where, annotation, value)
    return float(value) if annotation is float else value


_SCALARS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _describe(annotation: Any) -> str:
    """What a value of `annotation` is, in a config writer's words: "a number or null"."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is list:
        return f"a list of {_PLURALS[args[0]]}" if args and args[0] in _PLURALS else "a list"
    return "a mapping" if origin is dict or dataclasses.is_dataclass(annotation) else str(annotation)


def _refuse(where: str, annotation: Any, value: Any) -> typing.NoReturn:
    raise InputError(f"config: {where} must be {_describe(annotation)}, got {value!r}")


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
    if not isinstance(raw, dict):
        raise InputError(f"config: top level must be a mapping, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            if node.get(part) is None:  # absent, or an empty section in the YAML
                node[part] = {}
            if not isinstance(node[part], dict):
                raise InputError(f"config: {'.'.join(parents[: depth + 1])} must be a mapping, got {node[part]!r}")
            node = node[part]
        node[leaf] = value
    return validate(_build(Config, raw, ""))
