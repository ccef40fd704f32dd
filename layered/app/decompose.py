"""Decomposition for the editor: the classic method or a diffusion model, whole image or one layer (recursive).

Light to import: torch and diffusers load on the first model decomposition. Pipelines are cached per model
and shared by all sessions (weights are not user data); `cancel` (a threading.Event) stops a model run at
the next denoising step.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np

from layered.errors import InputError
from layered.layer_tools import split_layer
from layered.stack import LayerStack

METHODS = ("classic", "model")
MAX_LAYERS = 20  # the paper's maximum
Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """The user pressed Cancel during a decomposition."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the Decompose panel holds; `layers` is an int or "auto", `resolution` None for the model's own."""

    method: str = "classic"
    model: str = "demo"
    layers: int | str = "auto"
    steps: int = 50
    seed: int = 0
    guidance: float = 4.0
    resolution: int | None = None
    prompt: str = ""

    @classmethod
    def parse(cls, method, model, layers, steps, seed, guidance, resolution, prompt) -> Settings:
        """Settings from raw UI/API values; bad values raise InputError with the allowed range."""
        method = str(method or "classic").strip().lower()
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        return cls(
            method=method,
            model=str(model or "demo").strip() or "demo",
            layers=parse_layers(layers),
            steps=_int(steps, "steps", 1, 1000),
            seed=_int(seed, "seed", 0, 2**63 - 1),
            guidance=_float(guidance, "guidance", 1.0, 20.0),
            resolution=None if resolution in (None, "", 0, "0") else _int(resolution, "resolution", 16, 4096),
            prompt=str(prompt or "").strip(),
        )


def parse_layers(value) -> int | str:
    """ "auto" or a layer count 1..MAX_LAYERS (from a string, int or float)."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return "auto"
    return _int(value, "layers", 1, MAX_LAYERS)


def _int(value, name: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def _float(value, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number from {low} to {high}, got {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"{name} must be a number from {low} to {high}, got {value!r}")
    return number


# ---- decomposers: full-canvas RGBA -> LayerStack ------------------------------------------------------


def decomposer(
    settings: Settings, progress: Progress, cancel: threading.Event, keep_alpha: bool = False
) -> Callable[[np.ndarray], LayerStack]:
    """A function RGBA -> stack for `settings`; `keep_alpha` (recursive splits) keeps the input's alpha."""
    if settings.method == "classic":
        from layered.classic import decompose_classic
        from layered.refine import refine

        def classic(rgba: np.ndarray) -> LayerStack:
            progress(0.1, "classic decomposition")
            stack = refine(decompose_classic(rgba, settings.layers), rgba)  # the same last step as the model's
            if cancel.is_set():
                raise Cancelled
            return stack

        return classic
    return _model_decomposer(settings, progress, cancel, keep_alpha)


def decompose_image(rgba: np.ndarray, settings: Settings, progress: Progress, cancel: threading.Event) -> LayerStack:
    """Split a whole image into layers."""
    stack = decomposer(settings, progress, cancel)(rgba)
    return _named(stack)


def decompose_layer(
    stack: LayerStack, index: int, settings: Settings, progress: Progress, cancel: threading.Event
) -> LayerStack:
    """Split layer `index` of `stack` again and splice the parts in its place (the other layers untouched)."""
    return split_layer(stack, index, decomposer(settings, progress, cancel, keep_alpha=True))


def _named(stack: LayerStack) -> LayerStack:
    names = [layer.name or f"layer {i}" for i, layer in enumerate(stack.layers)]
    return stack.replace(layers=tuple(layer.replace(name=n) for layer, n in zip(stack.layers, names, strict=True)))


# ---- the diffusion model ----------------------------------------------------------------------------

_PIPELINES: dict[str, object] = {}
_PIPELINES_LOCK = threading.Lock()


def load_model(model: str):
    """The `LayeredPipeline` for `model` (a name, folder or Hub id), loaded once per process."""
    with _PIPELINES_LOCK:
        pipe = _PIPELINES.get(model)
        if pipe is None:
            import torch

            from layered.models import load_pipeline

            cuda = torch.cuda.is_available()
            pipe = load_pipeline(model, dtype=torch.bfloat16 if cuda else torch.float32)
            pipe.set_progress_bar_config(disable=True)
            pipe.configure_memory(offload="none", device=torch.device("cuda" if cuda else "cpu"))
            _PIPELINES[model] = pipe
        return pipe


def _model_decomposer(
    settings: Settings, progress: Progress, cancel: threading.Event, keep_alpha: bool
) -> Callable[[np.ndarray], LayerStack]:
    import PIL.Image
    import torch

    progress(0.0, f"loading model {settings.model}")
    pipe = load_model(settings.model)

    def on_step(pipeline, step: int, timestep, tensors: dict) -> dict:
        if cancel.is_set():
            raise Cancelled
        progress((step + 1) / settings.steps, f"denoising step {step + 1} of {settings.steps}")
        return tensors

    def run(rgba: np.ndarray) -> LayerStack:
        guided = settings.guidance > 1.0
        return pipe(
            image=PIL.Image.fromarray(rgba),
            prompt=settings.prompt or None,
            negative_prompt=" " if guided else None,
            true_cfg_scale=settings.guidance,
            layers=settings.layers,
            num_inference_steps=settings.steps,
            resolution=settings.resolution,
            generator=torch.Generator("cpu").manual_seed(settings.seed),
            background=None if keep_alpha else (255, 255, 255),
            callback_on_step_end=on_step,
            output_type="np",
        ).stacks[0]

    return run
