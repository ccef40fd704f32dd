"""The one place that turns "method, model, layers, options" into a decomposer: RGBA uint8 array -> LayerStack.

The CLI (`layered decompose`), the editor, training's held-out evaluation and the scoring script all build
their decomposers here, so the same `Settings` give the same layers everywhere.

The layer count and the other limits are the one rule of `layered.limits`, shared with every method.

Refinement is on by default (`Settings(refine=False)` keeps the raw layers). Light to import: torch and
diffusers load only when a model decomposer is built; pipelines are loaded once per process (thread-safe)
and shared by all callers (weights are not user data).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from layered.errors import InputError
from layered.limits import DTYPES, MIN_STEPS, OFFLOAD_MODES, choice, number_in, parse_layers, whole_number
from layered.stack import LayerStack

METHODS = ("classic", "peel", "model")
# The default is the method that scores best on benchmarks/bench_quality.py (README, "Benchmarks").
DEFAULT_METHOD = "peel"  # beats classic on IoU@0 and L1@0 on all three sets
WHITE = (255, 255, 255)

Decomposer = Callable[[np.ndarray], LayerStack]
Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """The user cancelled a decomposition (the `cancel` event was set)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to decompose with; checked when made (raw form or CLI values are converted, bad ones raise InputError).

    `layers`: see the module docstring; `steps`, `seed`, `guidance` (true classifier-free guidance, 1 = off),
    `resolution` (None or 0: the model's own; `exact_size`: the input's own, which must then suit the model, as
    training's held-out rows do), `prompt` ("" = caption automatically) apply to the model;
    `device`, `dtype` ("auto": bfloat16 on GPU, float32 on CPU) and `offload` say where the model runs;
    `refine` (every method) turns the layers into layers at the input's size that add up to it (`layered.refine`).
    """

    method: str = DEFAULT_METHOD
    model: str = "demo"
    layers: int | str = "auto"
    steps: int = 50
    seed: int = 0
    guidance: float = 1.0
    resolution: int | None = None
    prompt: str = ""
    exact_size: bool = False
    refine: bool = True
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"

    def __post_init__(self) -> None:
        resolution = self.resolution
        checked = {
            "method": choice(self.method, "method", METHODS, DEFAULT_METHOD),
            "model": str(self.model or "demo").strip() or "demo",
            "layers": parse_layers(self.layers),
            "steps": whole_number(self.steps, "steps", MIN_STEPS, 1000),
            "seed": whole_number(self.seed, "seed", 0, 2**63 - 1),
            "guidance": number_in(self.guidance, "guidance", 1.0, 20.0),
            "resolution": None
            if resolution in (None, "", 0, "0")
            else whole_number(resolution, "resolution", 16, 4096),
            "prompt": str(self.prompt or "").strip(),
            "exact_size": bool(self.exact_size),
            "refine": bool(self.refine),
            "device": str(self.device or "auto").strip() or "auto",
            "dtype": choice(self.dtype, "dtype", DTYPES, "auto"),
            "offload": choice(self.offload, "offload", OFFLOAD_MODES, "none"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: normalise once, here


def decomposer(
    settings: Settings,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    keep_alpha: bool = False,
    pipeline=None,
) -> Decomposer:
    """A function full-canvas RGBA -> stack for `settings`.

    `progress(fraction, text)` is told how far it got; a set `cancel` event raises `Cancelled` (at the next
    denoising step for the model); `keep_alpha` (recursive splits) keeps the input's alpha instead of
    flattening it over white; `pipeline` is an already loaded `LayeredPipeline` to use instead of
    `settings.model` (training's in-memory weights).
    """
    if settings.method == "classic":
        return _classic(settings, progress, cancel)
    if settings.method == "peel":
        return _peel(settings, progress, cancel)
    pipe = pipeline
    if pipe is None:
        if progress is not None:
            progress(0.0, f"loading model {settings.model}")
        pipe = load_model(settings)
    on_step = _step_hook(settings, progress, cancel)

    def decompose(rgba: np.ndarray) -> LayerStack:
        return call_pipeline(pipe, rgba, settings, keep_alpha=keep_alpha, on_step=on_step).stacks[0]

    return decompose


def _classic(settings: Settings, progress: Progress | None, cancel: threading.Event | None) -> Decomposer:
    try:
        from layered.classic import decompose_classic
    except ImportError:
        raise InputError("the classic method is not available in this installation: use --method model") from None
    from layered.refine import refine

    def decompose(rgba: np.ndarray) -> LayerStack:
        if progress is not None:
            progress(0.1, "classic decomposition")
        stack = decompose_classic(rgba, settings.layers)  # exact already; refinement is the same last step
        stack = stack.replace(layers=(stack[0].replace(kind="background"), *stack[1:]))  # its opaque plate
        stack = refine(stack, rgba) if settings.refine else stack.replace(working_size=stack.size, refined=False)
        if cancel is not None and cancel.is_set():
            raise Cancelled
        return stack

    return decompose


def _peel(settings: Settings, progress: Progress | None, cancel: threading.Event | None) -> Decomposer:
    """The peel network (`layered.peel`): the shipped one, or a PeelNet folder given as `settings.model`."""
    from layered.peel import at_size, decompose_peel, load_peel
    from layered.refine import refine

    if progress is not None:
        progress(0.0, "loading the peel network")
    model = load_peel(None if settings.model == "demo" else settings.model)

    def decompose(rgba: np.ndarray) -> LayerStack:
        if progress is not None:
            progress(0.1, "peeling layers")
        stack = decompose_peel(rgba, model, settings.layers)
        if cancel is not None and cancel.is_set():
            raise Cancelled
        return refine(stack, rgba) if settings.refine else at_size(stack, (rgba.shape[1], rgba.shape[0]))

    return decompose


def _step_hook(settings: Settings, progress: Progress | None, cancel: threading.Event | None):
    """diffusers' `callback_on_step_end` reporting progress and honouring `cancel`; None when neither is given."""
    if progress is None and cancel is None:
        return None

    def on_step(_pipeline, step: int, _timestep, tensors: dict) -> dict:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        if progress is not None:
            progress((step + 1) / settings.steps, f"denoising step {step + 1} of {settings.steps}")
        return tensors

    return on_step


def call_pipeline(pipe, rgba: np.ndarray, settings: Settings, *, keep_alpha: bool = False, on_step=None):
    """The one `LayeredPipeline` call for one image under `settings` (output_type "np"): its `LayeredPipelineOutput`.

    `.stacks[0]` is the decomposition; `.images[0]` the layers at the model's working size.
    """
    import PIL.Image
    import torch

    guided = settings.guidance > 1.0
    height, width = rgba.shape[:2] if settings.exact_size else (None, None)
    return pipe(
        image=PIL.Image.fromarray(rgba),
        prompt=settings.prompt or None,
        negative_prompt=" " if guided else None,
        true_cfg_scale=settings.guidance,
        layers=settings.layers,
        num_inference_steps=settings.steps,
        resolution=settings.resolution,
        height=height,
        width=width,
        generator=torch.Generator("cpu").manual_seed(settings.seed),
        background=None if keep_alpha else WHITE,
        callback_on_step_end=on_step,
        output_type="np",
        refine=settings.refine,
    )


# ---- the pipeline cache ----------------------------------------------------------------------------

_PIPELINES: dict[tuple, object] = {}
_PIPELINES_LOCK = threading.Lock()


def load_model(settings: Settings):
    """The `LayeredPipeline` for `settings.model` on its device, dtype and offload, loaded once per process."""
    import torch

    from layered.models import MODEL_INDEX, resolve_model

    device = torch.device(
        settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    dtype = settings.dtype if settings.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    folder = resolve_model(settings.model)
    written = (Path(folder) / MODEL_INDEX).stat().st_mtime_ns  # a folder saved again is loaded again
    key = (folder, written, str(device), dtype, settings.offload)
    with _PIPELINES_LOCK:
        pipe = _PIPELINES.get(key)
        if pipe is None:
            from layered.models import load_pipeline

            pipe = load_pipeline(folder, dtype=getattr(torch, dtype))
            pipe.set_progress_bar_config(disable=True)
            pipe.configure_memory(offload=settings.offload, device=device)
            _PIPELINES[key] = pipe
        return pipe
