"""`layered eval PRED GT [--max-merge 5] [--json]`: score predicted layers against ground truth (LayerD protocol).

PRED and GT are each a layer folder (or a file `read_stack` reads), or a folder of layer folders; two
folders of folders are matched by sub-folder name and reported as the mean plus one row set per sample.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layered.errors import InputError
from layered.stack import LAYERS_JSON


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predicted layers: a layer folder, or a folder of layer folders")
    parser.add_argument("gt", metavar="GT", help="ground-truth layers, of the same kind as PRED")
    parser.add_argument(
        "--max-merge", type=int, default=5, metavar="K", help="score after 0..K greedy merges (default: 5)"
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")


def _samples(path: Path) -> dict[str, Path] | None:
    """None for a single sample (a layer folder or a file); else the layer folders inside, by name."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not path.is_dir() or (path / LAYERS_JSON).is_file():
        return None
    folders = {p.name: p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise InputError(f"{path}: not a layer folder (no {LAYERS_JSON}) nor a folder of layer folders")
    return folders


def _visible_entries(folder: Path) -> int:
    """Visible layers a layer folder's layers.json lists (0 when it cannot tell: loading it will say why)."""
    from layered.stack import MAX_SPEC_BYTES

    spec = folder / LAYERS_JSON
    try:
        if spec.stat().st_size > MAX_SPEC_BYTES:
            return 0
        entries = json.loads(spec.read_text(encoding="utf-8"))["layers"]
        return sum(1 for e in entries if not isinstance(e, dict) or e.get("visible", True) is not False)
    except (OSError, ValueError, RecursionError, TypeError, KeyError):
        return 0


def _read(path: Path):
    """The stack at `path`; a layer folder over the layer limit is refused before its PNGs are read."""
    from layered.commands.notes import say_notes
    from layered.formats import read_stack
    from layered.metrics import MAX_EVAL_LAYERS

    if path.is_dir() and (count := _visible_entries(path)) > MAX_EVAL_LAYERS:
        raise InputError(f"{path}: {count} visible layers, more than the limit of {MAX_EVAL_LAYERS} that eval scores")
    stack = read_stack(path)
    say_notes(stack, path, "eval")
    return stack


def _score(pred: Path, gt: Path, max_merge: int) -> list[dict]:
    from layered.metrics import evaluate

    try:
        return evaluate(_read(pred), _read(gt), max_merge)
    except ValueError as exc:
        raise InputError(f"{pred} vs {gt}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from layered.metrics import mean_scores

    if args.max_merge < 0:
        raise InputError(f"--max-merge must be >= 0, got {args.max_merge}")
    pred, gt = Path(args.pred), Path(args.gt)
    pred_samples, gt_samples = _samples(pred), _samples(gt)
    if (pred_samples is None) != (gt_samples is None):
        single = pred if pred_samples is None else gt
        raise InputError(f"{single} is one layer stack but the other side is a folder of layer folders")
    if pred_samples is None:
        rows = _score(pred, gt, args.max_merge)
        print(json.dumps(rows) if args.json else _table(rows))
        return 0
    only_pred = sorted(pred_samples.keys() - gt_samples.keys())
    only_gt = sorted(gt_samples.keys() - pred_samples.keys())
    if only_pred or only_gt:
        missing = [f"only in {pred}: {', '.join(only_pred)}"] if only_pred else []
        missing += [f"only in {gt}: {', '.join(only_gt)}"] if only_gt else []
        raise InputError("samples do not match (" + "; ".join(missing) + ")")
    samples = {name: _score(pred_samples[name], gt_samples[name], args.max_merge) for name in sorted(pred_samples)}
    mean = mean_scores(list(samples.values()))
    if args.json:
        print(json.dumps({"mean": mean, "samples": samples}))
    else:
        print("\n\n".join([*(_table(rows, name) for name, rows in samples.items()), _table(mean, "mean")]))
    return 0


def _table(rows: list[dict], title: str | None = None) -> str:
    lines = [title] if title else []
    lines.append(f"{'merge':>5}  {'rgb_l1':>8}  {'soft_iou':>8}")
    lines += [f"{r['merge']:>5}  {r['rgb_l1']:>8.4f}  {r['soft_iou']:>8.4f}" for r in rows]
    return "\n".join(lines)
