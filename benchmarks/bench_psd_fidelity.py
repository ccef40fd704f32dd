"""Fidelity on the shared corpus, against Photoshop's stored composite: the builder's row and the reader's row.

- builder: `layered psd build`'s accepted rows (their full-canvas layers, recomposed with PIL's alpha_composite);
- reader: what the editor, `layered compose`, `eval`, `refine` and `decompose --recursive` open
  (`layered.formats.psd.read_with_notes`), on every corpus PSD that carries a stored composite.

Both are scored against the colour-managed stored composite built from psd-tools and ImageCms alone
(`tests/helpers.colour_managed_composite`), as the worse of the two PSNRs over black and over white (a
stored composite without alpha is the document flattened over white: scored over white). "Layers kept" is,
over the files the builder accepts, sum(min(reader layers, builder layers)) / sum(builder layers), counting
the reader's visible non-empty layers. Open time is the sum over files of the best of `--repeat` opens,
divided by the same sum for the reader before issue 24: timed in the same run, file by file in turn with
ours, from its source at commit `--baseline-commit` (git show), or else as recorded in `psd_open_baseline.json`.

    nice python benchmarks/bench_psd_fidelity.py [CORPUS_DIR] [--workers 2] [--dataset DIR] [--reader-only]
    python benchmarks/bench_psd_fidelity.py --save-baseline   # records the current reader as the baseline
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_CORPUS = ROOT.parent / "shared" / "psd-corpus"
BASELINE = Path(__file__).with_name("psd_open_baseline.json")
OLD_READER = "b31eb3d"  # the last commit with the reader before issue 24 (layered/formats/psd.py)


def old_reader(commit: str):
    """The module `layered/formats/psd.py` as it was at `commit` (its imports still resolve), from git."""
    import subprocess
    import types

    source = subprocess.run(
        ["git", "show", f"{commit}:layered/formats/psd.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("old_psd_reader")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{commit}:layered/formats/psd.py", "exec"), module.__dict__)  # noqa: S102
    return module


def best_time(function, path: Path, repeat: int):
    """(best seconds of `repeat` calls of function(path), its last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(path)
        best = min(best, time.perf_counter() - start)
    return best, result


def worst_over(ours: np.ndarray, reference: np.ndarray) -> float:
    """The worse PSNR (dB, capped at 99) of `ours` (straight RGBA) over black and over white vs `reference`."""
    a = ours[..., 3:].astype(np.float64) / 255.0
    rgb = ours[..., :3].astype(np.float64) / 255.0
    ref = reference.astype(np.float64) / 255.0
    if ref.shape[2] == 3:  # flattened over white
        pairs = [(rgb * a + 1 - a, ref)]
    else:
        ra = ref[..., 3:]
        pairs = [(rgb * a + back * (1 - a), ref[..., :3] * ra + back * (1 - ra)) for back in (0.0, 1.0)]
    values = []
    for x, y in pairs:
        mse = float(np.mean((x - y) ** 2))
        values.append(99.0 if mse < 1e-10 else min(99.0, 10 * np.log10(1 / mse)))
    return min(values)


def stored_reference(path: Path):
    """The colour-managed stored composite of `path`, or None when the file has none psd-tools can read."""
    import warnings

    from helpers import colour_managed_composite
    from psd_tools import PSDImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            psd = PSDImage.open(path)
            if not psd.has_preview() or psd.topil() is None or psd.topil().size != psd.size:
                return None
            return colour_managed_composite(psd)
        except Exception:
            return None


def corpus_files(corpus: Path) -> list[Path]:
    from layered.formats import PSD_SUFFIXES

    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() in PSD_SUFFIXES)


def score_reader(corpus: Path, repeat: int, old=None) -> dict[str, dict]:
    """Per corpus file with a stored composite: dB, visible layers, notes, best open seconds (or error); with
    `old` (a reader module), also its best open seconds on the same file, timed in turn with ours."""
    import logging

    from layered.errors import InputError
    from layered.formats import psd as psd_format

    logging.disable(logging.WARNING)
    out = {}
    for path in corpus_files(corpus):
        reference = stored_reference(path)
        if reference is None:
            continue
        source = str(path.relative_to(corpus))
        try:
            old_seconds = best_time(old.read_with_notes, path, repeat)[0] if old is not None else None
        except InputError:
            old_seconds = None
        try:
            best, (stack, notes) = best_time(psd_format.read_with_notes, path, repeat)
        except InputError as exc:
            out[source] = {"error": str(exc)}
            continue
        shown = sum(1 for layer in stack if layer.visible and not layer.is_empty)
        value = worst_over(stack.composite(), reference) if reference.shape[:2] == stack.size[::-1] else 0.0
        out[source] = {"db": round(value, 3), "layers": shown, "notes": list(notes), "seconds": best}
        if old_seconds is not None:
            out[source]["old_seconds"] = old_seconds
    return out


def score_builder(corpus: Path, dataset: Path) -> dict[str, dict]:
    """Per accepted row: dB (recomposed with PIL) and its layer count; rows without a stored composite skipped."""
    from PIL import Image

    from psd_pipeline.dataset import iter_samples

    out = {}
    for _id, _composite, layers, meta in iter_samples(dataset):
        reference = stored_reference(corpus / meta["source"])
        if reference is None or meta["reference"] != "stored":
            continue
        flat = Image.new("RGBA", (layers[0].shape[1], layers[0].shape[0]), (0, 0, 0, 0))
        for layer in layers:
            flat = Image.alpha_composite(flat, Image.fromarray(layer))
        out[meta["source"]] = {"db": round(worst_over(np.asarray(flat), reference), 3), "layers": len(layers)}
    return out


def row(name: str, scores: dict[str, dict], kept: str, ratio: str) -> str:
    values = np.array([s["db"] for s in scores.values() if "db" in s])
    errors = sum("error" in s for s in scores.values())
    text = f"{name:<26} {int(np.sum(values >= 40)):>4}/{len(values):<4} {int(np.sum(values < 30)):>9}"
    text += f" {values.min():>9.2f} {kept:>12} {ratio:>10}"
    return text + (f"   ({errors} refused)" if errors else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", type=Path, help="score an existing build instead of building")
    parser.add_argument("--repeat", type=int, default=2, help="opens per file for the timing (best kept)")
    parser.add_argument("--reader-only", action="store_true", help="skip the build and the builder's row")
    parser.add_argument("--save-baseline", action="store_true", help=f"write the reader's numbers to {BASELINE.name}")
    parser.add_argument("--json", type=Path, help="also write every per-file number here")
    parser.add_argument(
        "--baseline-commit", default=OLD_READER, help="time the reader of this commit in the same run ('' : the file)"
    )
    args = parser.parse_args()
    old = old_reader(args.baseline_commit) if args.baseline_commit and not args.save_baseline else None
    reader = score_reader(args.corpus, args.repeat, old)
    seconds = sum(s["seconds"] for s in reader.values() if "seconds" in s)
    if args.save_baseline:
        BASELINE.write_text(json.dumps({"seconds": seconds, "files": reader}, indent=1) + "\n", encoding="utf-8")
        print(f"baseline written: {BASELINE} ({seconds:.2f} s over {len(reader)} files)")
    base = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.is_file() else None
    if old is not None:  # same run: only the files both open
        timed = [s for s in reader.values() if "old_seconds" in s]
        seconds = sum(s["seconds"] for s in timed)
        base = {"seconds": sum(s["old_seconds"] for s in timed), "where": f"reader of {args.baseline_commit}, same run"}
    elif base is not None:
        base["where"] = f"recorded in {BASELINE.name}"
    ratio = "-" if base is None else f"{seconds / base['seconds']:.2f}x"
    builder: dict[str, dict] = {}
    if not args.reader_only:
        from psd_pipeline.build import BuildConfig, build

        with tempfile.TemporaryDirectory() as tmp:
            dataset = args.dataset or Path(tmp) / "dataset"
            if args.dataset is None:
                config = BuildConfig(args.corpus, dataset, workers=args.workers, progress=False)
                build(config, log=lambda _message: None)
            builder = score_builder(args.corpus, dataset)
    kept = "-"
    if builder:
        both = [(reader[s].get("layers", 0), b["layers"]) for s, b in builder.items() if s in reader]
        kept = f"{sum(min(r, b) for r, b in both) / max(1, sum(b for _r, b in both)):.1%}"
    print(f"{'':<26} {'>=40 dB':>9} {'<30 dB':>9} {'min dB':>9} {'layers kept':>12} {'open time':>10}")
    if builder:
        print(row("builder (psd build)", builder, "100%", "-"))
    print(row("reader (editor/compose)", reader, kept, ratio))
    where = "" if base is None else f" (baseline {base['seconds']:.2f} s, {base['where']})"
    print(f"reader open time: {seconds:.2f} s{where}")
    for source, s in sorted(reader.items(), key=lambda item: item[1].get("db", -1)):
        if s.get("db", 0) < 40:
            extra = f"builder {builder[source]['db']:.1f} dB" if source in builder else "builder: no row"
            print(f"  reader {s.get('db', float('nan')):6.2f} dB  {source}  ({extra}) {s.get('error', '')}")
    if args.json:
        args.json.write_text(json.dumps({"reader": reader, "builder": builder}, indent=1) + "\n", encoding="utf-8")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB (build workers not counted)")


if __name__ == "__main__":
    main()
