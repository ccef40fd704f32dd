"""`layered decompose IMAGE... -o DIR`: split images into RGBA layers (classic, peel or the diffusion model).

Light to import: torch loads only for `--method peel` and `--method model`, diffusers only for the model.
Under `accelerate launch` the inputs are split across processes with `PartialState().split_between_processes`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from layered.decompose import DEFAULT_METHOD, METHODS, Decomposer, Settings, decomposer
from layered.errors import InputError
from layered.limits import DTYPES, MAX_LAYERS, OFFLOAD_MODES, parse_layers


def _layers(text: str) -> int | str:
    """argparse's reading of --layers: the one layer-count rule of `layered.limits`."""
    try:
        return parse_layers(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders of images")
    parser.add_argument("-o", "--output", default="layers", metavar="DIR", help="output folder (default: ./layers)")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help=f"classic (non-learned), peel (the shipped peel network; --model PATH for another) or the diffusion "
        f"model (default: {DEFAULT_METHOD}; model with --model)",
    )
    parser.add_argument(
        "--model", default=None, metavar="ID|PATH", help="demo, qwen-image-layered, a Hub id or a folder"
    )
    parser.add_argument(
        "--layers",
        type=_layers,
        default="auto",
        metavar="N|auto",
        help=f"layer count, 1 to {MAX_LAYERS} (default: auto)",
    )
    parser.add_argument(
        "--steps", type=int, default=50, metavar="N", help="denoising steps, at least 2 (model; default: 50)"
    )
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
    parser.add_argument("--offload", choices=OFFLOAD_MODES, default="none", help="CPU offload (model)")
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


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _settings(args: argparse.Namespace) -> Settings:
    """The command line as `layered.decompose.Settings` (the CLI runs without classifier-free guidance)."""
    return Settings(
        method=args.method or ("model" if args.model else DEFAULT_METHOD),
        model=args.model or "demo",
        layers=args.layers,
        steps=args.steps,
        seed=args.seed,
        resolution=args.resolution,
        prompt=args.prompt,
        refine=args.refine,
        device=args.device,
        dtype=args.dtype,
        offload=args.offload,
    )


def _decomposers(settings: Settings) -> tuple[Decomposer, Decomposer]:
    """(whole images, over white; recursive splits, keeping the layer's alpha)."""
    if settings.method == "model":
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    return decomposer(settings), decomposer(settings, keep_alpha=True)


def run(args: argparse.Namespace) -> int:
    from layered.commands.decompose_batch import check_output_dir, collect_inputs, output_names, run_batch
    from layered.formats import check_export_kinds

    settings = _settings(args)
    exports = check_export_kinds(args.export.split(","))
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
        if args.device == "auto":
            settings = dataclasses.replace(settings, device=str(state.device))
    decompose, split = _decomposers(settings)
    options = {"exports": exports, "recursive": args.recursive, "split": split, "overwrite": args.overwrite}
    if state is None:
        failures = run_batch(items, out_dir, decompose, **options)
        done = len(items)
    else:
        with state.split_between_processes(items) as mine:
            failures = run_batch(list(mine), out_dir, decompose, **options)
            done = len(mine)
    print(
        f"wrote {done - failures} of {done} layer folders to {out_dir}" + (f" ({failures} failed)" if failures else "")
    )
    return 2 if failures else 0
