"""`layered psd build|merge|inspect|synth`: PSD tools (the work is in `psd_pipeline`, imported only when run)."""

from __future__ import annotations

import argparse


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
    from psd_pipeline import cli

    return cli.run(args)
