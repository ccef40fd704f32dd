"""`layered compose SRC -o OUT.png`: flatten a layer folder, a PSD or an ORA file."""

from __future__ import annotations

import argparse

from layered.fileio import save_png
from layered.formats import read_stack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="LAYER_FOLDER|FILE.psd|FILE.ora", help="layers to flatten")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png", help="PNG file to write")


def run(args: argparse.Namespace) -> int:
    stack = read_stack(args.source)
    save_png(stack.composite(), args.output)
    print(f"wrote {args.output} ({stack.width}x{stack.height}, {len(stack)} layers)")
    return 0
