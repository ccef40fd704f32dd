"""`layered compose SRC -o OUT.png`: flatten a layer folder, a PSD or an ORA file."""

from __future__ import annotations

import argparse
from pathlib import Path

from layered.commands.notes import say_notes
from layered.errors import InputError
from layered.formats import read_stack
from layered.ownership import check_replaceable, save_signed_png


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="LAYER_FOLDER|FILE.psd|FILE.ora", help="layers to flatten")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png", help="PNG file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.png even if layered did not write it")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"{output}: is a folder (-o names the PNG file to write)")
    check_replaceable(output, args.overwrite, inputs=[Path(args.source)])  # a PNG of ours is replaced
    stack = read_stack(args.source)
    say_notes(stack, args.source, "compose")
    save_signed_png(stack.composite(), output)
    print(f"wrote {args.output} ({stack.width}x{stack.height}, {len(stack)} layers)")
    return 0
