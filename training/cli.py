"""`layered train vae|mmdit|peel CONFIG`: flags override the config; the same entry runs under `accelerate launch`.

`layered.cli` dispatches here (`add_arguments`, `run`). A new trainer is one `TRAINERS` entry (and its name in
`training.config.TASKS`); the training modules are imported only when their trainer runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
from typing import NamedTuple

from training.config import load_config

TRAIN_MARKER = ".layered-train.json"  # in --output-dir: the folder is a training run of ours


class Trainer(NamedTuple):
    """`layered train NAME`: `module.function(config, resume=...)` returns {"output", "step", "losses"}."""

    module: str
    function: str
    help: str
    needs_dataset: bool = True  # False: it draws its own data (no data.path to check, no latent cache)


TRAINERS = {
    "vae": Trainer("training.vae", "train_vae", "the RGBA-VAE"),
    "mmdit": Trainer("training.mmdit", "train_mmdit", "the VLD-MMDiT"),
    "peel": Trainer("training.peel", "train_peel", "the peel network (designs drawn on the fly)", needs_dataset=False),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = "; ".join(f"{name}: {trainer.help}" for name, trainer in TRAINERS.items())
    parser.add_argument("task", choices=list(TRAINERS), help=f"what to train ({names})")
    parser.add_argument("config", metavar="CONFIG.yaml", help="training config (see training/configs/)")
    parser.add_argument("--data", metavar="DIR", help="dataset folder of Parquet shards (overrides data.path)")
    parser.add_argument("--output-dir", metavar="DIR", help="where checkpoints, logs and the output go")
    parser.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (overrides train.max_steps)")
    parser.add_argument("--vae", metavar="DIR", help="RGBA-VAE folder an MMDiT run uses (overrides model.vae)")
    parser.add_argument("--init-from", metavar="DIR", help="start from the previous stage's output folder")
    parser.add_argument("--cache", metavar="DIR", help="latent/text-embedding cache folder (overrides data.cache)")
    parser.add_argument("--build-cache", action="store_true", help="write the cache (--cache DIR) and exit")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --output-dir that no run of ours wrote"
    )
    parser.add_argument("--dry-run", action="store_true", help="print model size, tokens and memory; no training")


def _claim_output_dir(folder: str, overwrite: bool, resume: bool) -> None:
    """Train only into an empty folder or one a run of ours wrote (its marker), unless --overwrite; then mark it."""
    from layered.ownership import check_output_folder, mark_output_folder

    ours = check_output_folder(folder, TRAIN_MARKER, overwrite)
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch, one process writes the marker
        mark_output_folder(folder, TRAIN_MARKER, "train")
        if ours and not resume:  # a fresh run's log starts at its own first step
            (Path(folder) / "logs" / "metrics.jsonl").unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    overrides = {
        "task": args.task,
        "data.path": args.data,
        "output_dir": args.output_dir,
        "train.max_steps": args.max_steps,
        "model.vae": args.vae,
        "model.init_from": args.init_from,
        "data.cache": None if args.build_cache else args.cache,
    }
    config = load_config(args.config, overrides)
    if args.dry_run:
        from training.dry_run import dry_run

        print(json.dumps(dry_run(config)))
        return 0
    trainer = TRAINERS[config.task]
    if trainer.needs_dataset and not _check_dataset(config, args):
        return 0  # --build-cache: the cache is written, nothing to train
    _claim_output_dir(config.output_dir, args.overwrite, args.resume)
    train = getattr(importlib.import_module(trainer.module), trainer.function)
    return _report(train(config, resume=args.resume))


def _check_dataset(config, args: argparse.Namespace) -> bool:
    """Fail fast (before torch is imported) on a missing dataset; with --build-cache write it and say so (False)."""
    from layered.errors import InputError
    from training.data import list_shards

    if args.build_cache and not args.cache:
        raise InputError("--build-cache needs --cache DIR")
    if not config.data.path:
        raise InputError("no training data: set data.path in the config or pass --data DIR")
    list_shards(config.data.path)
    if args.build_cache:
        from training.cache import write_cache

        print(f"wrote {write_cache(config, args.cache)}")
        return False
    return True


def _report(result: dict) -> int:
    """One line: what the run wrote, at which step, with its last loss."""
    if result.get("output"):
        # A run resumed at its last step trains no step: it only writes its output.
        last = f", last loss {result['losses'][-1]:.4g}" if result["losses"] else ""
        print(f"wrote {result['output']} (step {result['step']}{last})")
    return 0
