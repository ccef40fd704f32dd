"""`layered app`: start the web layer editor (Gradio), bound to 127.0.0.1 unless --host says otherwise.

Light to import: gradio, torch and diffusers load inside `run`.
"""

from __future__ import annotations

import argparse

from layered.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument(
        "--model", default="demo", metavar="ID|PATH", help="model for the 'model' method: demo, a folder or a Hub id"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="decompositions run at once (default: 1)"
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--no-examples", action="store_true", help="do not generate the example designs")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    try:
        from layered.app.ui import launch
    except ImportError as exc:
        raise InputError(f"the web editor needs gradio ({exc}): pip install 'layered[app]'") from None
    from layered.app.examples import example_files

    examples = [] if args.no_examples else example_files()
    try:
        launch(
            host=args.host,
            port=args.port,
            model=args.model,
            share=args.share,
            concurrency=args.concurrency,
            examples=examples,
        )
    except OSError as exc:  # port taken, address not available
        raise InputError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0
