"""`layered refine LAYERS IMAGE -o DIR`: make layers from any decomposer add up to IMAGE, at its own size.

For layers made elsewhere (the stock Qwen-Image-Layered pipeline at its 640/1024 bucket, another tool) or
with `layered decompose --no-refine`. Light: numpy, scipy and Pillow only.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layers", metavar="LAYERS", help="layer folder, PSD or ORA (any size, the image's aspect)")
    parser.add_argument("image", metavar="IMAGE", help="the image the layers were decomposed from")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="layer folder to write")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an output that layered did not write (never an input)"
    )


def run(args: argparse.Namespace) -> int:
    from layered.commands.notes import say_notes
    from layered.fileio import open_image, to_rgba_array
    from layered.formats import read_stack
    from layered.ownership import check_replaceable
    from layered.refine import refine

    out = Path(args.output)
    check_replaceable(out, args.overwrite, inputs=[Path(args.layers), Path(args.image)])
    stack = read_stack(args.layers)
    say_notes(stack, args.layers, "refine")
    image = to_rgba_array(open_image(args.image))
    refined = refine(stack, image)
    refined.save(out)
    print(f"wrote {out} ({refined.width}x{refined.height}, {len(refined)} layers, from {stack.width}x{stack.height})")
    return 0
