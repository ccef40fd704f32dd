"""`layered train vae|mmdit|peel CONFIG`: a light shim; the training package is imported only when it runs."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.cli import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    from training.cli import run as run_training

    return run_training(args)
