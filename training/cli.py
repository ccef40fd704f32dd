"""`layered train vae|mmdit|peel CONFIG`: flags override the config; the same entry runs under `accelerate launch`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from training.config import load_config

TRAIN_MARKER = ".layered-train.json"  # in --output-dir: the folder is a training run of ours


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", choices=["vae", "mmdit", "peel"], help="what to train: the RGBA-VAE, the VLD-MMDiT or the peel network"
    )
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
    from layered.errors import InputError
    from training.data import list_shards

    if config.task == "peel":  # designs drawn on the fly (data.synth): no dataset to check
        _claim_output_dir(config.output_dir, args.overwrite, args.resume)
        from training.peel import train_peel

        return _report(train_peel(config, resume=args.resume))

    if args.build_cache and not args.cache:
        raise InputError("--build-cache needs --cache DIR")
    if not config.data.path:
        raise InputError("no training data: set data.path in the config or pass --data DIR")
    list_shards(config.data.path)  # fails fast, before torch is imported
    if not args.build_cache:
        _claim_output_dir(config.output_dir, args.overwrite, args.resume)
    if args.build_cache:
        from training.cache import write_cache

        print(f"wrote {write_cache(config, args.cache)}")
        return 0
    if config.task == "vae":
        from training.vae import train_vae

        result = train_vae(config, resume=args.resume)
    else:
        from training.mmdit import train_mmdit

        result = train_mmdit(config, resume=args.resume)
    return _report(result)


def _report(result: dict) -> int:
    """One line: what the run wrote, at which step, with its last loss."""
    if result.get("output"):
        # A run resumed at its last step trains no step: it only writes its output.
        last = f", last loss {result['losses'][-1]:.4g}" if result["losses"] else ""
        print(f"wrote {result['output']} (step {result['step']}{last})")
    return 0
