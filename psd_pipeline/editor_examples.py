"""The web editor's example inputs, made once by the synthetic design generator and shipped as package data.

Two flat PNG designs to decompose and one PSD to edit layer by layer, written into `layered/assets/examples`
(`layered.app.examples` reads them there; `layered` itself never runs the generator):

    python -m psd_pipeline.editor_examples [-o layered/assets/examples]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layered.app.examples import EXAMPLES_DIR
from layered.fileio import save_png
from psd_pipeline.synth import design_to_psd, make_design

EXAMPLE_SEED = 7
EXAMPLE_SIZE = 512
EXAMPLE_COUNT = 3  # the last one a PSD


def example_names(count: int = EXAMPLE_COUNT) -> list[str]:
    """File names of the examples, in the order the editor lists them."""
    return [f"design-{k}.{'psd' if k == count - 1 else 'png'}" for k in range(count)]


def write_examples(folder: str | Path, count: int = EXAMPLE_COUNT, size: int = EXAMPLE_SIZE) -> list[Path]:
    """Draw the flat designs 0..count-1 of EXAMPLE_SEED into `folder` (each file written atomically)."""
    folder = Path(folder)
    paths = []
    for k, name in enumerate(example_names(count)):
        stack = make_design(EXAMPLE_SEED, k, size, style="flat")
        path = folder / name
        if path.suffix == ".psd":
            design_to_psd(stack, path)
        else:
            save_png(stack.composite(), path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=EXAMPLES_DIR, help=f"folder (default {EXAMPLES_DIR})")
    args = parser.parse_args(argv)
    for path in write_examples(args.output):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
