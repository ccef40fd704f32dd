"""Entry points behind `layered psd build|merge|inspect|synth` (argument parsing lives in layered.commands.psd)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layered.errors import InputError
from layered.fileio import MAX_PIXELS


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
