"""`layered psd build|merge|inspect|synth`: the arguments and the entry points (`layered.cli` dispatches here).

Light to import: each entry point imports its part of `psd_pipeline` only when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layered.errors import InputError
from layered.fileio import MAX_PIXELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="psd_command", metavar="build|merge|inspect|synth", required=True)

    build = sub.add_parser("build", help="turn a folder of PSD files into a training dataset (Parquet shards)")
    build.add_argument("source", metavar="SRC_DIR", help="folder searched recursively for .psd/.psb files")
    build.add_argument("-o", "--output", required=True, metavar="DATASET_DIR", help="dataset folder to write")
    build.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    build.add_argument("--max-layers", type=int, default=20, help="merge non-overlapping layers down to N (20)")
    build.add_argument("--max-side", type=int, default=None, help="downscale so the longer side is at most N px")
    build.add_argument("--min-psnr", type=float, default=40.0, help="fidelity gate in dB (default 40)")
    build.add_argument(
        "--min-visible", type=float, default=1e-4, help="drop layers showing less than this canvas fraction (1e-4)"
    )
    build.add_argument("--max-pixels", type=int, default=None, help="refuse canvases larger than this (8192^2)")
    build.add_argument("--resume", action="store_true", help="continue an interrupted build in DATASET_DIR")
    build.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty DATASET_DIR that no build of ours wrote"
    )
    build.add_argument("--num-shards", type=int, default=1, help="split the input into N partitions (cluster)")
    build.add_argument("--shard-index", type=int, default=0, help="which partition this run builds (0..N-1)")
    build.add_argument("--caption", choices=("none", "names", "vlm"), default="none", help="caption source")
    build.add_argument("--caption-model", metavar="PATH", help="local Qwen2.5-VL checkpoint for --caption vlm")
    build.add_argument("--shard-rows", type=int, default=500, help="rows per Parquet shard at most (500)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.add_argument(
        "--file-timeout", type=float, default=None, metavar="S", help="seconds per file before it is a timeout (600)"
    )

    merge = sub.add_parser("merge", help="one dataset from the parts of a sharded build (--num-shards)")
    merge.add_argument("parts", nargs="+", metavar="PART", help="the DATASET_DIR of each `build --shard-index` run")
    merge.add_argument("-o", "--output", required=True, metavar="DATASET", help="merged dataset folder (new or empty)")
    merge.add_argument("--move", action="store_true", help="move the shards out of the parts (default: hard links)")
    merge.add_argument("--allow-missing", action="store_true", help="merge even if some shard indexes are absent")

    inspect = sub.add_parser("inspect", help="show a PSD's layer tree, what each rule did, and its fidelity")
    inspect.add_argument("file", metavar="FILE.psd", help="PSD or PSB file")
    inspect.add_argument("--max-layers", type=int, default=20)
    inspect.add_argument("--min-visible", type=float, default=1e-4)
    inspect.add_argument("--min-psnr", type=float, default=40.0)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")

    synth = sub.add_parser("synth", help="write synthetic layered designs as PSD files")
    synth.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write design_N.psd into")
    synth.add_argument("--count", type=int, required=True, help="number of designs")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    synth.add_argument("--size", type=int, default=256, help="canvas side in pixels (default 256)")
    synth.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    synth.add_argument("--png", action="store_true", help="also write each design's composite as PNG")
    synth.add_argument(
        "--overwrite", action="store_true", help="replace design files layered did not write (its own are replaced)"
    )
    synth.add_argument(
        "--style",
        choices=("rich", "flat"),
        default="rich",
        help="rich: fonts, emoji, icons, cut-outs, panels, in a fixed layer-order convention (default); "
        "flat: v1 flat shapes in random order",
    )


def run(args: argparse.Namespace) -> int:
    commands = {"build": run_build, "merge": run_merge, "inspect": run_inspect, "synth": run_synth}
    return commands[args.psd_command](args)


def run_build(args: argparse.Namespace) -> int:
    from psd_pipeline.build import DEFAULT_FILE_TIMEOUT, BuildConfig, build
    from psd_pipeline.sample import SampleOptions

    if args.shard_rows < 1:
        raise InputError("--shard-rows must be at least 1")
    options = SampleOptions(
        max_layers=args.max_layers,
        min_visible=args.min_visible,
        max_side=args.max_side,
        min_psnr=args.min_psnr,
        max_pixels=args.max_pixels or MAX_PIXELS,
        caption=args.caption,
    )
    config = BuildConfig(
        Path(args.source),
        Path(args.output),
        options,
        workers=args.workers,
        resume=args.resume,
        overwrite=args.overwrite,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        caption_model=args.caption_model,
        shard_rows=args.shard_rows,
        progress=not args.no_progress,
        file_timeout=DEFAULT_FILE_TIMEOUT if args.file_timeout is None else args.file_timeout,
    )
    report = build(config)
    counts = ", ".join(f"{k} {v}" for k, v in report["by_outcome"].items())
    print(f"{report['inputs']} files: {counts}; {report['rows']} rows in {report['shards']} shard(s) in {args.output}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from psd_pipeline.merge import merge

    report, how = merge(args.parts, args.output, move=args.move, allow_missing=args.allow_missing)
    counts = ", ".join(f"{k} {v}" for k, v in report["by_outcome"].items())
    print(
        f"merged {len(args.parts)} part(s): {report['inputs']} files: {counts}; "
        f"{report['rows']} rows in {report['shards']} shard(s) ({how}) in {args.output}"
    )
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from psd_pipeline.build import not_regular
    from psd_pipeline.inspect import format_report, inspect_file

    path = Path(args.file)
    kind = not_regular(str(path))
    if kind is not None:
        raise InputError(f"{str(path)!r}: {kind}, not a regular file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    report = inspect_file(path, max_layers=args.max_layers, min_visible=args.min_visible, min_psnr=args.min_psnr)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from psd_pipeline.synth import write_designs

    if args.count < 0:
        raise InputError("--count must be at least 0")
    if not 16 <= args.size <= 4096:
        raise InputError("--size must be between 16 and 4096")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    paths = write_designs(
        Path(args.output),
        args.count,
        seed=args.seed,
        size=args.size,
        workers=args.workers,
        png=args.png,
        style=args.style,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(paths)} design(s) to {args.output}")
    return 0
