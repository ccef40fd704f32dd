"""The `layered` command: one entry point, one module per subcommand.

Each command module is light to import (no torch, diffusers or gradio at module level) and defines
`add_arguments(parser)` and `run(args) -> int`. Input errors print one line and exit with status 2.
The library's own commands live in `layered.commands`; `layered psd` and `layered train` are dispatched to
the packages that own them (`psd_pipeline.cli`, `training.cli`): the only place `layered` reaches them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from layered.errors import LayeredError, one_line

# name -> (module with add_arguments and run, help), in the order `layered --help` lists them
COMMANDS = {
    "compose": ("layered.commands.compose", "flatten a layer folder, PSD or ORA into one PNG"),
    "psd": ("psd_pipeline.cli", "PSD tools: build a dataset, inspect a file, synthesise designs"),
    "eval": ("layered.commands.eval", "score predicted layers against ground truth (LayerD protocol)"),
    "decompose": ("layered.commands.decompose", "split images into RGBA layers (classic, peel or model method)"),
    "refine": ("layered.commands.refine", "make layers from any decomposer add up to their image, at its own size"),
    "train": ("training.cli", "train the RGBA-VAE, the VLD-MMDiT or the peel network (also under accelerate)"),
    "app": ("layered.commands.app", "start the web layer editor"),
}


def build_parser() -> argparse.ArgumentParser:
    from layered import __version__

    parser = argparse.ArgumentParser(
        prog="layered", description="Layered image decomposition: one image in, editable RGBA layers out."
    )
    parser.add_argument("--version", action="version", version=f"layered {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except LayeredError as exc:
        print(one_line(f"layered {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"layered {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if os.environ.get("LAYERED_DEBUG"):
            raise
        print(
            one_line(
                f"layered {args.command}: internal error: {type(exc).__name__}: {exc} "
                "(set LAYERED_DEBUG=1 for the traceback)"
            ),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
