"""`LayeredPipeline`: image -> N RGBA layers with Qwen-Image-Layered, on diffusers' `QwenImageLayeredPipeline`.

A subclass of the stock pipeline (same components, `from_pretrained`/`save_pretrained`, LoRA loading) whose
`__call__` fixes its defects: batches of different images (sizes, layer counts) each get their own layers;
any resolution; plain RGB and RGBA inputs; optional captioning; `output_type="latent"`; and it returns
`LayerStack`s (bottom-first, cropped, at the input's size) beside the images.

Prompt rules, per input: `prompt_embeds` are used as given (never captioned). Otherwise a non-empty prompt
is encoded; an empty one is replaced by a caption when the pipeline has a `processor` and a `text_encoder`;
without a captioner it falls back to `FALLBACK_PROMPT`, the empty caption (the unconditional text our
trainer teaches through caption dropout), encoded by the text encoder; without a text encoder, to a single
all-zero text token.

Loading: every folder `save_pretrained` writes names the class through diffusers' custom-pipeline support
(`model_index.json` `_class_name: ["pipeline_layered", "LayeredPipeline"]` + a two-line `pipeline_layered.py`
that imports this class), so `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` returns a
`LayeredPipeline`; `LayeredPipeline.from_pretrained(folder)` needs no flag (the named class is itself).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import QwenImageLayeredPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.qwenimage.pipeline_qwenimage_layered import calculate_dimensions, retrieve_timesteps
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from layered.errors import InputError
from layered.fileio import atomic_path
from layered.layer_tools import AUTO_TOLERANCE, prune_layers, split_layer
from layered.limits import MAX_LAYERS, MIN_STEPS, MODEL_AUTO_LAYERS, OFFLOAD_MODES, parse_layers, whole_number
from layered.pixels import composite_over, resize_rgba
from layered.refine import refine as refine_to_image
from layered.stack import LayerStack

FALLBACK_PROMPT = ""  # what `layered train` feeds for a dropped caption: the model knows it
STOCK_BUCKETS = (640, 1024)  # at these resolutions sides round to multiples of 32, exactly like the stock pipeline
DEFAULT_MAX_LAYERS = MODEL_AUTO_LAYERS  # what layers="auto" decomposes into before pruning (layered.limits)
# diffusers' custom-pipeline reference written into every saved model_index.json, and the module it names
PIPELINE_MODULE = "pipeline_layered"
PIPELINE_CLASS_NAME = [PIPELINE_MODULE, "LayeredPipeline"]
PIPELINE_MODULE_SOURCE = '''"""This folder's diffusers custom pipeline: `layered.LayeredPipeline` (pip install layered).

    DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True)
"""

from layered.pipeline import LayeredPipeline

__all__ = ["LayeredPipeline"]
'''


@dataclass
class LayeredPipelineOutput(BaseOutput):
    """`images[i]`: the layers of output i, bottom-first, at model size; `stacks[i]`: the same layers as a
    `LayerStack` at the input's size (None for `output_type="latent"`).

    `images` is a list of lists of PIL images for "pil". For "np" / "pt" / "latent" it is one array when all outputs
    share size and layer count: np `(batch, layers, H, W, 4)`, pt `(batch, layers, 4, H, W)`, latent
    `(batch, z_dim, 1 + layers, h, w)`; a mixed batch gets a list of per-output arrays.
    """

    images: list | np.ndarray | torch.Tensor
    stacks: list | None = None


def _to_pil(image: Any) -> PIL.Image.Image:
    """One image (PIL, H x W x C array in uint8 or [0, 1], C x H x W tensor in [0, 1]) as a PIL image."""
    if isinstance(image, PIL.Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu()
        if image.ndim != 3:
            raise ValueError(f"an image tensor must be C x H x W, got shape {tuple(image.shape)}")
        image = image.permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (array.astype(np.float64) * 255.0).round().clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be H x W x 1/3/4, got shape {array.shape}")
    return PIL.Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def _image_list(image: Any) -> list[PIL.Image.Image]:
    """The inputs of one call as a list of PIL images (a batched array or tensor is split along axis 0)."""
    if isinstance(image, (list, tuple)):
        return [_to_pil(im) for im in image]
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return [_to_pil(im) for im in image]
    if isinstance(image, np.ndarray) and image.ndim == 4:
        return [_to_pil(im) for im in image]
    return [_to_pil(image)]


def condition_rgba(image: PIL.Image.Image, background: tuple[int, int, int] | None) -> PIL.Image.Image:
    """The 4-channel condition image: RGB gets alpha 255; RGBA is flattened over `background` (None: kept)."""
    rgba = image.convert("RGBA")
    if background is None:
        return rgba
    flat = composite_over(np.asarray(rgba), tuple(int(c) for c in background))
    return PIL.Image.fromarray(flat).convert("RGBA")


def _per_input(value: Any, count: int, name: str) -> list:
    """Broadcast a scalar (or a 1-list) to `count` inputs; a list must have one entry per input."""
    if not isinstance(value, (list, tuple)):
        return [value] * count
    if len(value) == 1:
        return list(value) * count
    if len(value) != count:
        raise ValueError(f"`{name}` has {len(value)} entries for {count} images")
    return list(value)


def _batch_images(images: list, output_type: str) -> list | np.ndarray | torch.Tensor:
    """One array/tensor (batch first) when every output has the same shape; a list otherwise (and for pil)."""
    if output_type == "pil" or not images or len({tuple(im.shape) for im in images}) > 1:
        return images
    return np.stack(images) if output_type == "np" else torch.stack(images)


def _is_empty_prompt(prompt: str | None) -> bool:
    return prompt is None or not str(prompt).strip()


def _check_call(
    image: Any, prompt: Any, prompt_embeds: Any, *, output_type: str, num_images_per_prompt: int, steps: int
) -> None:
    """The argument checks of `__call__` that need no model (`steps`: how many denoising steps will run)."""
    if image is None:
        raise ValueError("LayeredPipeline decomposes an image: pass `image`")
    if output_type not in ("pil", "np", "pt", "latent"):
        raise ValueError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
    if prompt is not None and prompt_embeds is not None:
        raise ValueError("pass either `prompt` or `prompt_embeds`, not both")
    if num_images_per_prompt < 1:
        raise ValueError("num_images_per_prompt must be at least 1")
    if steps < MIN_STEPS:
        raise ValueError(f"num_inference_steps must be at least {MIN_STEPS} (one step has no noise schedule)")


def _layer_counts(layers: Any, count: int, max_layers: int) -> tuple[list[int], list[bool]]:
    """Per input: how many layers to decompose into, and whether they were "auto" (then pruned), by the one
    layer-count rule (`layered.limits.parse_layers`); "auto" decomposes into `max_layers`."""
    counts, auto = [], []
    try:
        for value in _per_input(layers, count, "layers"):
            n = parse_layers(value)
            auto.append(n == "auto")
            counts.append(whole_number(max_layers, "max_layers", 1, MAX_LAYERS) if n == "auto" else n)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    return counts, auto


def _groups(sizes: list[tuple[int, int]], layer_counts: list[int]) -> dict[tuple, list[int]]:
    """The inputs that share a working size and a layer count run as one batch: ((h, w), n) -> input indices."""
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(sizes, layer_counts, strict=True)):
        groups.setdefault(key, []).append(i)
    return groups


@dataclass
class _Texts:
    """The text side of one call: per-input texts or user embeddings, and the negative side when guided."""

    prompts: list[str] | None  # resolved, one per input (None with user embeddings)
    embeds: torch.Tensor | None
    mask: torch.Tensor | None
    negatives: list | None
    neg_embeds: torch.Tensor | None
    neg_mask: torch.Tensor | None
    guided: bool
    max_sequence_length: int


@dataclass
class _TextCondition:
    """One batch's text embeddings (and the negative ones for classifier-free guidance)."""

    embeds: torch.Tensor
    mask: torch.Tensor | None
    neg_embeds: torch.Tensor | None = None
    neg_mask: torch.Tensor | None = None


@dataclass
class _Sampling:
    """What every batch of one call samples with."""

    device: torch.device
    per_image: int
    num_inference_steps: int
    sigmas: list[float] | None
    cfg_scale: float | None  # None: no classifier-free guidance
    cfg_normalize: bool
    callback: Callable | None
    callback_inputs: Sequence[str]


def _stacks(outputs: list, inputs: list, auto: list[bool], *, per_image: int, refine: bool, auto_tolerance: float):
    """(images, stacks) per output row: "auto" rows pruned (images too), each stack refined to its input or resized."""
    images, stacks = [], []
    for row, (layer_images, pixels) in enumerate(outputs):
        i = row // per_image
        stack = LayeredPipeline._to_stack(pixels, None if refine else inputs[i].size)
        if auto[i]:
            stack, kept = prune_layers(stack, auto_tolerance)
            layer_images = [layer_images[k] for k in kept] if isinstance(layer_images, list) else layer_images[kept]
        if refine:
            stack = refine_to_image(stack, inputs[i])
        images.append(layer_images)
        stacks.append(stack)
    return images, stacks


class LayeredPipeline(QwenImageLayeredPipeline):
    """Qwen-Image-Layered decomposition: `pipe(image, layers=4)` -> `.images` and `.stacks` (bottom-first).

    Components as in `QwenImageLayeredPipeline`; `text_encoder`, `tokenizer` and `processor` are optional.
    `default_resolution` (saved in `model_index.json`) is the model's native working size.
    """

    _optional_components = ["text_encoder", "tokenizer", "processor"]

    def __init__(
        self, *, scheduler, vae, text_encoder, tokenizer, processor, transformer, default_resolution: int = 640
    ):
        super().__init__(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            processor=processor,
            transformer=transformer,
        )
        self.register_to_config(default_resolution=int(default_resolution))

    # ------------------------------------------------------------------ the folder: diffusers' custom pipeline

    def to_json_string(self) -> str:
        """The `model_index.json` text, naming this class through the folder's custom-pipeline module."""
        config = json.loads(super().to_json_string())
        config["_class_name"] = list(PIPELINE_CLASS_NAME)
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs) -> None:
        """`model_index.json` plus `pipeline_layered.py`, the module its `_class_name` names (written atomically)."""
        with atomic_path(os.path.join(save_directory, f"{PIPELINE_MODULE}.py")) as tmp:
            tmp.write_text(PIPELINE_MODULE_SOURCE, encoding="utf-8")
        if push_to_hub:  # diffusers writes the same `to_json_string`, then uploads the folder
            super().save_config(save_directory, push_to_hub=True, **kwargs)
            return
        with atomic_path(os.path.join(save_directory, self.config_name)) as tmp:
            self.to_json_file(tmp)

    @classmethod
    def load_config(cls, *args, **kwargs):
        """diffusers' `load_config`; a folder whose custom pipeline is this class loads it directly (no code to run)."""
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(config, dict) and config.get("_class_name") == PIPELINE_CLASS_NAME:
            config["_class_name"] = cls.__name__
        return loaded

    # ----------------------------------------------------------------- sizes, prompts, memory switches

    def working_size(
        self, size: tuple[int, int], resolution: int | None = None, height: int | None = None, width: int | None = None
    ) -> tuple[int, int]:
        """(height, width) the model works at for an input of `size` = (width, height).

        `height`/`width` given: used as is (multiples of 2 * vae_scale_factor). Otherwise an area of
        `resolution`**2 (default: `config.default_resolution`) at the input's aspect ratio; at 640 and 1024 the
        sides round to multiples of 32 like the stock pipeline, elsewhere to multiples of 2 * vae_scale_factor.
        """
        multiple = self.vae_scale_factor * 2
        if height is not None or width is not None:
            if height is None or width is None or height % multiple or width % multiple or min(height, width) <= 0:
                raise ValueError(f"`height` and `width` must both be given, positive multiples of {multiple}")
            return int(height), int(width)
        resolution = int(resolution or getattr(self.config, "default_resolution", 640))
        if resolution <= 0:
            raise ValueError(f"`resolution` must be positive, got {resolution}")
        ratio = size[0] / size[1]
        if resolution in STOCK_BUCKETS and 32 % multiple == 0:
            w, h = calculate_dimensions(resolution * resolution, ratio)
        else:
            w = math.sqrt(resolution * resolution * ratio)
            w, h = round(w / multiple) * multiple, round(w / ratio / multiple) * multiple
        return max(int(h) // multiple * multiple, multiple), max(int(w) // multiple * multiple, multiple)

    def _text_dtype(self) -> torch.dtype:
        return self.vae.dtype

    def encode_prompt(
        self,
        prompt: str | list[str],
        device: torch.device | None = None,
        *,
        num_images_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None,
        prompt_embeds_mask: torch.Tensor | None = None,
        max_sequence_length: int = 1024,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(prompt_embeds, prompt_embeds_mask)` for `__call__(prompt_embeds=..., prompt_embeds_mask=...)`, rows
        prompt-major (each prompt `num_images_per_prompt` times); the mask (1 = token, 0 = padding) is always given."""
        device = device or self._execution_device
        if prompt_embeds is None:
            prompt = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds, prompt_embeds_mask = self._get_qwen_prompt_embeds(prompt, device)
        prompt_embeds = prompt_embeds[:, :max_sequence_length]
        if prompt_embeds_mask is None:
            prompt_embeds_mask = torch.ones(prompt_embeds.shape[:2], dtype=torch.long, device=prompt_embeds.device)
        # the stock version repeats the mask batch-major while the embeddings go prompt-major: rows then mismatch
        prompt_embeds_mask = prompt_embeds_mask[:, :max_sequence_length].repeat_interleave(num_images_per_prompt, dim=0)
        return prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0), prompt_embeds_mask

    def _encode_texts(self, texts: list[str], device, num_images_per_prompt: int, max_sequence_length: int):
        """Embeddings for `texts` (one per input), each repeated `num_images_per_prompt` times."""
        if self.text_encoder is None or self.tokenizer is None:
            dim = self.transformer.config.joint_attention_dim
            count = len(texts) * num_images_per_prompt
            return torch.zeros(count, 1, dim, device=device, dtype=self._text_dtype()), None
        embeds, mask = self.encode_prompt(
            prompt=texts,
            device=device,
            num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=max_sequence_length,
        )
        return embeds.to(self._text_dtype()), None if mask.all() else mask  # no padding: unmasked, like stock

    def _resolve_prompts(self, prompts: list, condition_images: list, use_en_prompt: bool, device) -> list[str]:
        """Each input's text: its prompt, else a caption (with a captioner), else FALLBACK_PROMPT / zeros."""
        resolved = []
        for prompt, image in zip(prompts, condition_images, strict=True):
            if not _is_empty_prompt(prompt):
                resolved.append(str(prompt))
            elif self.processor is not None and self.text_encoder is not None:
                resolved.append(self.get_image_caption(image, use_en_prompt=use_en_prompt, device=device))
            else:
                resolved.append(FALLBACK_PROMPT)
        return resolved

    def set_attention_slice(self, slice_size: int | None) -> None:
        """diffusers' attention slicing; Qwen-Image's transformer and VAE have none, so say so instead of nothing."""
        sliceable = [m for m in self.components.values() if hasattr(m, "set_attention_slice")]
        if slice_size is not None and not sliceable:
            self.logger_warning(
                "attention slicing has no effect on this pipeline (no component supports it): outputs and memory are "
                "unchanged; use configure_memory(offload=..., vae_slicing=True) or enable_group_offload to save memory"
            )
        super().set_attention_slice(slice_size)

    def configure_memory(
        self,
        offload: str = "none",
        device: str | torch.device | None = None,
        *,
        layerwise_fp8: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        attention_backend: str | None = None,
    ) -> LayeredPipeline:
        """Memory/speed switches in one call: CPU offload (model / sequential / group), fp8 weight storage for
        the transformer (`enable_layerwise_casting`), VAE slicing/tiling, attention backend ("sdpa", "xformers")."""
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if attention_backend:
            backend = {"sdpa": "native", "torch": "native"}.get(attention_backend, attention_backend)
            self.transformer.set_attention_backend(backend)
        if layerwise_fp8:
            self.transformer.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=self.transformer.dtype
            )
        if vae_slicing:
            self.vae.enable_slicing()
        if vae_tiling:
            self.vae.enable_tiling()
        if offload == "model":
            self.enable_model_cpu_offload(device=device)
        elif offload == "sequential" and device.type != "cpu":
            self.enable_sequential_cpu_offload(device=device)
        elif (
            offload == "sequential"
        ):  # accelerate's leaf offload breaks when it executes on the CPU: diffusers' leaf hooks
            self.enable_group_offload(onload_device=device, offload_device=device, offload_type="leaf_level")
        elif offload == "group":
            self.enable_group_offload(
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=device.type == "cuda",
            )
        else:
            self.to(device)
        return self

    # ----------------------------------------------------------------------------- the call

    @torch.no_grad()
    def __call__(  # noqa: PLR0913, PLR0917 (diffusers' explicit pipeline arguments, as QwenImageLayeredPipeline)
        self,
        image: Any = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        true_cfg_scale: float = 4.0,
        layers: int | str | list = 4,
        num_inference_steps: int = 50,
        sigmas: list[float] | None = None,
        guidance_scale: float | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        prompt_embeds_mask: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds_mask: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        max_sequence_length: int = 512,
        resolution: int | None = None,
        cfg_normalize: bool = False,
        use_en_prompt: bool = False,
        height: int | None = None,
        width: int | None = None,
        background: tuple[int, int, int] | None = (255, 255, 255),
        max_layers: int = DEFAULT_MAX_LAYERS,
        auto_tolerance: float = AUTO_TOLERANCE,
        refine: bool = True,
    ) -> LayeredPipelineOutput | tuple:
        """Decompose `image` (one, or a list) into RGBA layers.

        Differences from `QwenImageLayeredPipeline.__call__`: `layers` may be an int, "auto" (decompose into
        `max_layers`, then drop layers that are empty or whose removal changes the composite by at most
        `auto_tolerance` levels) or one value per image; `resolution` is any size (default:
        `config.default_resolution`), or pass `height`/`width`; RGBA inputs are flattened over `background`
        (None keeps the alpha channel); `generator` may be a list with one generator per output (input-major),
        which makes every output equal to its single-input run. `prompt_embeds` / `prompt_embeds_mask` are what
        `encode_prompt` returns (one row for all, per input, or per output). Returns
        `LayeredPipelineOutput(images, stacks)`, or the tuple `(images, stacks)`. `images`: for "np"/"pt" one array
        `(batch, layers, H, W, 4)` / `(batch, layers, 4, H, W)` when all outputs share size and layer count, else
        a list of per-output arrays; for "pil" a list of lists of PIL images (see `LayeredPipelineOutput`).
        With `refine` (default) each stack is refined to its input (`layered.refine`): at the input's own size,
        recomposing it within 1/255; `refine=False` gives the raw layers resized. `images` stay at working size.
        """
        steps = num_inference_steps if sigmas is None else len(sigmas)
        _check_call(
            image,
            prompt,
            prompt_embeds,
            output_type=output_type,
            num_images_per_prompt=num_images_per_prompt,
            steps=steps,
        )
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        inputs = _image_list(image)
        count = len(inputs)
        per_image = num_images_per_prompt
        condition = [condition_rgba(im, background) for im in inputs]
        layer_counts, auto = _layer_counts(layers, count, max_layers)
        sizes = [self.working_size(im.size, resolution, height, width) for im in condition]
        for h, w in sizes:
            self.check_inputs(
                h,
                w,
                negative_prompt=negative_prompt,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                prompt_embeds_mask=prompt_embeds_mask,
                negative_prompt_embeds_mask=negative_prompt_embeds_mask,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                max_sequence_length=max_sequence_length,
            )
        if isinstance(generator, list) and len(generator) != count * per_image:
            raise ValueError(f"got {len(generator)} generators for {count * per_image} outputs (one per output)")

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs or {}
        self._current_timestep = None
        self._interrupt = False
        device = self._execution_device

        resized = [self.image_processor.resize(im, h, w) for im, (h, w) in zip(condition, sizes, strict=True)]
        guided = self._guided(true_cfg_scale, negative_prompt, negative_prompt_embeds)
        captions = None  # text conditions, one per input (never captioned when embeddings are given)
        if prompt_embeds is None:
            captions = self._resolve_prompts(_per_input(prompt, count, "prompt"), resized, use_en_prompt, device)
        texts = _Texts(
            prompts=captions,
            embeds=prompt_embeds,
            mask=prompt_embeds_mask,
            negatives=None if negative_prompt is None else _per_input(negative_prompt, count, "negative_prompt"),
            neg_embeds=negative_prompt_embeds,
            neg_mask=negative_prompt_embeds_mask,
            guided=guided,
            max_sequence_length=max_sequence_length,
        )
        groups = _groups(sizes, layer_counts)
        if latents is not None and len(groups) > 1:
            raise ValueError("`latents` can only be given when all images share a size and a layer count")
        sampling = _Sampling(
            device=device,
            per_image=per_image,
            num_inference_steps=num_inference_steps,
            sigmas=sigmas,
            cfg_scale=true_cfg_scale if guided else None,
            cfg_normalize=cfg_normalize,
            callback=callback_on_step_end,
            callback_inputs=callback_on_step_end_tensor_inputs,
        )

        outputs: list = [None] * (count * per_image)
        for ((h, w), n), members in groups.items():
            rows = [i * per_image + k for i in members for k in range(per_image)]
            text = self._text_condition(texts, members, count=count, sampling=sampling)
            cond = torch.cat([self.image_processor.preprocess(resized[i], h, w) for i in members])
            group_generator = [generator[r] for r in rows] if isinstance(generator, list) else generator
            final = self._denoise(
                cond.unsqueeze(2),
                text,
                layers=n,
                height=h,
                width=w,
                generator=group_generator,
                latents=latents,
                sampling=sampling,
            )
            decoded = self._decode(final, h, w, n, output_type)
            for j, row in enumerate(rows):
                outputs[row] = decoded[j]

        self.maybe_free_model_hooks()
        if output_type == "latent":
            images, stacks = outputs, None
        else:
            images, stacks = _stacks(
                outputs, inputs, auto, per_image=per_image, refine=refine, auto_tolerance=auto_tolerance
            )
        images = _batch_images(images, output_type)
        if not return_dict:
            return images, stacks
        return LayeredPipelineOutput(images=images, stacks=stacks)

    def _guided(self, true_cfg_scale: float, negative_prompt: Any, negative_prompt_embeds: Any) -> bool:
        """True classifier-free guidance runs with true_cfg_scale > 1 and a negative prompt (as stock)."""
        has_negative = negative_prompt is not None or negative_prompt_embeds is not None
        guided = true_cfg_scale > 1 and has_negative
        if has_negative and not guided:
            self.logger_warning("a negative prompt is ignored: classifier-free guidance needs true_cfg_scale > 1")
        return guided

    def _text_condition(self, texts: _Texts, members: list[int], *, count: int, sampling: _Sampling):
        """The text embeddings of the inputs `members` (user-given rows, or encoded), negative ones when guided."""
        device, per_image, length = sampling.device, sampling.per_image, texts.max_sequence_length
        if texts.embeds is not None:
            embeds, mask = self._select_embeds(texts.embeds, texts.mask, members, count, per_image)
            embeds = embeds.to(device=device, dtype=self._text_dtype())
        else:
            embeds, mask = self._encode_texts([texts.prompts[i] for i in members], device, per_image, length)
        if not texts.guided:
            return _TextCondition(embeds, mask)
        if texts.neg_embeds is not None:
            neg_embeds, neg_mask = self._select_embeds(texts.neg_embeds, texts.neg_mask, members, count, per_image)
            neg_embeds = neg_embeds.to(device=device, dtype=self._text_dtype())
        else:
            negatives = [texts.negatives[i] for i in members]
            neg_texts = [text if not _is_empty_prompt(text) else " " for text in negatives]
            if self.text_encoder is None:
                raise ValueError("a negative prompt needs a text encoder (or pass negative_prompt_embeds)")
            neg_embeds, neg_mask = self._encode_texts(neg_texts, device, per_image, length)
        return _TextCondition(embeds, mask, neg_embeds, neg_mask)

    def logger_warning(self, message: str) -> None:
        from diffusers.utils import logging

        logging.get_logger(__name__).warning(message)

    @staticmethod
    def _select_embeds(embeds: torch.Tensor, mask: torch.Tensor | None, members: list[int], count: int, per: int):
        """Rows of user-given embeddings for `members`: one row for all, one per input (repeated `per` times), or
        one per output as `encode_prompt(..., num_images_per_prompt=per)` returns them."""
        rows = embeds.shape[0]
        if rows not in (1, count, count * per):
            raise ValueError(f"prompt embeddings have batch {rows} for {count} images x {per} per image")
        if rows == count * per and rows != count:
            index = torch.tensor([i * per + k for i in members for k in range(per)])
        else:
            index = torch.tensor([0 if rows == 1 else i for i in members for _ in range(per)])
        picked = embeds[index.to(embeds.device)]
        picked_mask = mask[index.to(mask.device)] if mask is not None else None
        if picked_mask is not None and picked_mask.all():
            picked_mask = None
        return picked, picked_mask

    def _denoise(
        self,
        image: torch.Tensor,
        text: _TextCondition,
        *,
        layers: int,
        height: int,
        width: int,
        generator,
        latents: torch.Tensor | None,
        sampling: _Sampling,
    ) -> torch.Tensor:
        """Flow-matching sampling of `layers` + 1 frames for one same-size batch; returns packed latents."""
        dtype = self._text_dtype()
        device, per_image = sampling.device, sampling.per_image
        embeds = text.embeds
        batch = image.shape[0] * per_image
        channels = self.transformer.config.in_channels // 4
        image = image.to(device=device, dtype=self.vae.dtype)
        image_latents = self._encode_vae_image(image, generator=None).to(dtype)
        image_latents = image_latents.repeat_interleave(per_image, dim=0)  # input-major, like encode_prompt
        lat_h, lat_w = image_latents.shape[3:]
        image_latents = self._pack_latents(image_latents.permute(0, 2, 1, 3, 4), batch, channels, lat_h, lat_w, 1)
        grid_h = 2 * (height // (self.vae_scale_factor * 2))
        grid_w = 2 * (width // (self.vae_scale_factor * 2))
        if latents is None:
            shape = (batch, layers + 1, channels, grid_h, grid_w)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            latents = self._pack_latents(noise, batch, channels, grid_h, grid_w, layers + 1)
        else:
            latents = latents.to(device=device, dtype=dtype)
        frame = (1, grid_h // 2, grid_w // 2)
        img_shapes = [[frame] * (layers + 1) + [(1, lat_h // 2, lat_w // 2)]] * batch

        sigmas = sampling.sigmas
        sigmas = np.linspace(1.0, 0, sampling.num_inference_steps + 1)[:-1] if sigmas is None else sigmas
        mu = (image_latents.shape[1] / 256) ** 0.5  # condition tokens relative to a 256 x 256 image
        timesteps, _ = retrieve_timesteps(self.scheduler, None, device, sigmas=sigmas, mu=mu)
        self._num_timesteps = len(timesteps)
        guidance = None
        if self.transformer.config.guidance_embeds:
            if self.guidance_scale is None:
                raise ValueError("guidance_scale is required for a guidance-distilled model")
            guidance = torch.full([batch], self.guidance_scale, device=device, dtype=torch.float32)
        is_rgb = torch.zeros(batch, dtype=torch.long, device=device)  # 0: RGBA frames (the layered task)

        def predict(states, states_mask, model_input, timestep, name):
            with self.transformer.cache_context(name):
                out = self.transformer(
                    hidden_states=model_input,
                    timestep=timestep / 1000,
                    guidance=guidance,
                    encoder_hidden_states_mask=states_mask,
                    encoder_hidden_states=states,
                    img_shapes=img_shapes,
                    attention_kwargs=self.attention_kwargs,
                    additional_t_cond=is_rgb,
                    return_dict=False,
                )[0]
            return out[:, : latents.size(1)]

        self.scheduler.set_begin_index(0)
        with self.progress_bar(total=len(timesteps)) as progress:
            for step, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                model_input = torch.cat([latents, image_latents], dim=1)
                timestep = t.expand(batch).to(latents.dtype)
                noise_pred = predict(embeds, text.mask, model_input, timestep, "cond")
                if sampling.cfg_scale is not None:
                    uncond = predict(text.neg_embeds, text.neg_mask, model_input, timestep, "uncond")
                    combined = uncond + sampling.cfg_scale * (noise_pred - uncond)
                    if sampling.cfg_normalize:
                        scale = torch.norm(noise_pred, dim=-1, keepdim=True) / torch.norm(
                            combined, dim=-1, keepdim=True
                        )
                        combined = combined * scale
                    noise_pred = combined
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0].to(dtype)
                if sampling.callback is not None:
                    tensors = {"latents": latents, "prompt_embeds": embeds}
                    result = sampling.callback(self, step, t, {k: tensors[k] for k in sampling.callback_inputs})
                    latents = result.pop("latents", latents)
                    embeds = result.pop("prompt_embeds", embeds)
                progress.update()
        self._current_timestep = None
        return latents

    def _decode(self, latents: torch.Tensor, height: int, width: int, layers: int, output_type: str) -> list:
        """Per sample: (images of its `layers` layers, uint8 pixels n x H x W x 4); latent: (C, F, h, w) tensors."""
        frames = self._unpack_latents(latents, height, width, layers, self.vae_scale_factor)  # b c f h w
        if output_type == "latent":
            return list(frames)
        z = self.vae.config.z_dim
        frames = frames.to(self.vae.dtype)
        mean = torch.tensor(self.vae.config.latents_mean).view(1, z, 1, 1, 1).to(frames.device, frames.dtype)
        std = torch.tensor(self.vae.config.latents_std).view(1, z, 1, 1, 1).to(frames.device, frames.dtype)
        frames = frames * std + mean
        b, c, _, h, w = frames.shape
        frames = frames[:, :, 1:].permute(0, 2, 1, 3, 4).reshape(b * layers, c, 1, h, w)  # drop the composite frame
        decoded = self.vae.decode(frames, return_dict=False)[0].squeeze(2)
        decoded = self.image_processor.postprocess(decoded, output_type="pt")  # [0, 1]
        array = self.image_processor.pt_to_numpy(decoded)
        pixels = (array * 255).round().astype(np.uint8)
        result = []
        for j in range(b):
            part = slice(j * layers, (j + 1) * layers)
            if output_type == "pil":
                result.append((self.image_processor.numpy_to_pil(array[part]), pixels[part]))
            elif output_type == "np":
                result.append((array[part], pixels[part]))
            else:
                result.append((decoded[part], pixels[part]))
        return result

    @staticmethod
    def _to_stack(pixels: np.ndarray, size: tuple[int, int] | None) -> LayerStack:
        """Full-canvas model outputs (n x H x W x 4) as a stack, each layer cropped; resized to `size` if given."""
        working = (pixels.shape[2], pixels.shape[1])
        if size is not None and size != working:
            pixels = [resize_rgba(p, size) for p in pixels]
        stack = LayerStack.from_images(list(pixels), [f"layer {k}" for k in range(len(pixels))])
        return stack if size is None else stack.replace(working_size=working, refined=False)

    # ----------------------------------------------------------------------- recursive decomposition

    def decompose_layer(self, stack: LayerStack, index: int, layers: int | str = 2, **kwargs) -> LayerStack:
        """Split layer `index` of `stack` into `layers` layers and splice them in its place (others untouched).

        The layer is decomposed with its alpha (`background=None`); extra keyword arguments go to `__call__`.
        """
        kwargs.setdefault("background", None)

        def decompose(rgba: np.ndarray) -> LayerStack:
            return self(image=PIL.Image.fromarray(rgba), layers=layers, output_type="np", **kwargs).stacks[0]

        return split_layer(stack, index, decompose)
