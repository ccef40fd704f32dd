"""`layered decompose IMAGE... -o DIR`: split images into RGBA layers with the model or the classic method.

Light to import: torch and diffusers load only for `--method model`. Under `accelerate launch` the inputs
are split across processes with `PartialState().split_between_processes`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from layered.errors import InputError

# The demo model becomes the default only once it beats the classic method (DESIGN.md).
DEFAULT_METHOD = "classic"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _layers(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders of images")
    parser.add_argument("-o", "--output", default="layers", metavar="DIR", help="output folder (default: ./layers)")
    parser.add_argument(
        "--method",
        choices=("model", "classic"),
        default=None,
        help=f"diffusion model or non-learned classic method (default: {DEFAULT_METHOD}; model with --model)",
    )
    parser.add_argument(
        "--model", default=None, metavar="ID|PATH", help="demo, qwen-image-layered, a Hub id or a folder"
    )
    parser.add_argument("--layers", type=_layers, default="auto", metavar="N|auto", help="layer count (default: auto)")
    parser.add_argument("--steps", type=int, default=50, metavar="N", help="denoising steps (model; default: 50)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (model; default: 0)")
    parser.add_argument(
        "--resolution", type=int, default=None, metavar="N", help="working size (model; default: its own)"
    )
    parser.add_argument("--prompt", default="", metavar="TEXT", help="caption of the image (model; default: auto)")
    parser.add_argument("--export", default="", metavar="psd,ora,zip,pptx", help="also write these files per input")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs that layered did not write (what an earlier run wrote is always replaced)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1... (default: auto)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="model dtype (default: bfloat16 on GPU)")
    parser.add_argument(
        "--offload", choices=("none", "model", "sequential", "group"), default="none", help="CPU offload (model)"
    )
    parser.add_argument(
        "--recursive",
        type=int,
        default=None,
        metavar="LAYER_INDEX",
        help="then split this layer again into --layers layers (inputs may also be layer folders, PSD or ORA)",
    )
    parser.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="keep the decomposer's raw layers (default: refine them to add up to the input at its own size)",
    )


def _exports(text: str) -> tuple[str, ...]:
    from layered.formats import FORMATS

    kinds = tuple(dict.fromkeys(k.strip().lower().lstrip(".") for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in FORMATS]
    if unknown:
        raise InputError(f"unknown export format {', '.join(unknown)} (choose from {', '.join(FORMATS) or 'none'})")
    return kinds


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _classic(layers, refine: bool = True):
    try:
        from layered.classic import decompose_classic
    except ImportError:
        raise InputError("the classic method is not available in this installation: use --method model") from None
    from layered.refine import refine as refine_to_image

    def decompose(rgba):
        stack = decompose_classic(rgba, layers)  # exact already; refinement is the same last step as the model's
        return refine_to_image(stack, rgba) if refine else stack.replace(working_size=stack.size, refined=False)

    return decompose, decompose


def _model(args: argparse.Namespace, device):
    import PIL.Image
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from layered.models import load_pipeline

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    dtype = args.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    pipe = load_pipeline(args.model or "demo", dtype=getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    pipe.configure_memory(offload=args.offload, device=device)

    def run(rgba, background):
        generator = torch.Generator("cpu").manual_seed(args.seed)
        return pipe(
            image=PIL.Image.fromarray(rgba),
            prompt=args.prompt or None,
            layers=args.layers,
            num_inference_steps=args.steps,
            resolution=args.resolution,
            generator=generator,
            background=background,
            output_type="np",
            refine=args.refine,
        ).stacks[0]

    return (lambda rgba: run(rgba, (255, 255, 255))), (lambda rgba: run(rgba, None))


def run(args: argparse.Namespace) -> int:
    from layered.decompose_batch import check_output_dir, collect_inputs, output_names, run_batch

    method = args.method or ("model" if args.model else DEFAULT_METHOD)
    if args.steps < 1:
        raise InputError("--steps must be at least 1")
    exports = _exports(args.export)
    out_dir = Path(args.output)
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise InputError("no input images found")
    items = list(zip(inputs, output_names(inputs), strict=True))
    check_output_dir(out_dir)

    state = None
    if _distributed():
        import torch
        from accelerate import PartialState

        use_cpu = args.device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
        state = PartialState(cpu=use_cpu or not torch.cuda.is_available())  # CPU-only: gloo processes
    if method == "classic":
        decompose, split = _classic(args.layers, args.refine)
    else:
        import torch

        if args.device != "auto":
            device = torch.device(args.device)
        elif state is not None:
            device = state.device
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        decompose, split = _model(args, device)

    if state is None:
        failures = run_batch(items, out_dir, decompose, exports, args.recursive, split, overwrite=args.overwrite)
        done = len(items)
    else:
        with state.split_between_processes(items) as mine:
            failures = run_batch(
                list(mine), out_dir, decompose, exports, args.recursive, split, overwrite=args.overwrite
            )
            done = len(mine)
    print(
        f"wrote {done - failures} of {done} layer folders to {out_dir}" + (f" ({failures} failed)" if failures else "")
    )
    return 2 if failures else 0
