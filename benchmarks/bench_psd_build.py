"""Benchmark: `layered psd build --workers 2` on the shared corpus vs the naive psd-tools loop, same run.

The naive loop (from issue 3): for each file, `layer.composite(viewport=psd.viewbox)` for every visible
leaf layer, then `psd.composite(force=True)`. Ours also curates, checks fidelity against the stored
composite, encodes PNGs and writes Parquet shards + manifest. Each side runs in its own process; peak
RSS is that of the largest process (the builder's workers included).

The two sides run interleaved, `--rounds` times (naive then ours, then ours then naive, ...), so that a
machine whose load changes (other jobs) weighs on both alike; each round's wall-time ratio is printed with
the load average around it, and the median of the rounds is the result. The CPU ratio (CPU seconds of all
processes) does not depend on the load.

    nice -n 5 python benchmarks/bench_psd_build.py [CORPUS_DIR] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "psd-corpus"
sys.path.insert(0, str(ROOT))  # this checkout's `layered`, for the script and (through PYTHONPATH) its children


def naive(corpus: Path) -> None:
    """The baseline, run in a child process; prints a JSON line with its counts."""
    import logging
    import warnings

    from psd_tools import PSDImage

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    from layered.formats import PSD_SUFFIXES

    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in PSD_SUFFIXES)
    layers = errors = 0
    for path in files:
        try:
            psd = PSDImage.open(path)
            for layer in psd.descendants():
                if layer.is_visible() and not layer.is_group():
                    layer.composite(viewport=psd.viewbox)
                    layers += 1
            psd.composite(force=True)
        except Exception:
            errors += 1
    print(json.dumps({"files": len(files), "layers": layers, "errors": errors}))


def timed(command: list[str]) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS in MiB of the largest process in the tree, stdout, CPU seconds of the tree)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed with status {proc.returncode}")
    return seconds, usage.ru_maxrss // 1024, text, usage.ru_utime + usage.ru_stime


def run_naive(corpus: Path) -> dict:
    """One run of the naive loop: wall, CPU, peak RSS and its counts."""
    seconds, rss, out, cpu = timed([sys.executable, __file__, str(corpus), "--naive"])
    return {"s": seconds, "rss": rss, "cpu": cpu, **json.loads(out.strip().splitlines()[-1])}


def run_ours(corpus: Path, workers: int) -> dict:
    """One run of `layered psd build --workers N` into a temporary folder: wall, CPU, peak RSS and its report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        command = [sys.executable, "-m", "layered", "psd", "build", str(corpus), "-o", str(out)]
        seconds, rss, _, cpu = timed([*command, "--workers", str(workers), "--no-progress"])
        report = json.loads((out / "report.json").read_text())
    return {"s": seconds, "rss": rss, "cpu": cpu, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each side (median reported)")
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus = Path(args.corpus)
    if args.naive:
        naive(corpus)
        return
    print(f"corpus: {corpus}; {os.cpu_count()} CPUs; load average before: {load()}")
    bases, ours_runs = [], []
    for round_ in range(max(1, args.rounds)):
        order = ["naive", "ours"] if round_ % 2 == 0 else ["ours", "naive"]
        before = load()
        for side in order:
            if side == "naive":
                bases.append(run_naive(corpus))
            else:
                ours_runs.append(run_ours(corpus, args.workers))
        base, ours = bases[-1], ours_runs[-1]
        print(
            f"round {round_ + 1} ({' then '.join(order)}): naive {base['s']:6.2f} s (CPU {base['cpu']:5.1f} s), "
            f"ours {ours['s']:6.2f} s (CPU {ours['cpu']:5.1f} s): {base['s'] / ours['s']:.2f}x wall, "
            f"{base['cpu'] / ours['cpu']:.2f}x CPU; load average {before} -> {load()}"
        )
    base = {key: statistics.median(run[key] for run in bases) for key in ("s", "cpu")}
    ours = {key: statistics.median(run[key] for run in ours_runs) for key in ("s", "cpu")}
    first, report = bases[0], ours_runs[0]["report"]
    files, layers = report["inputs"], report["throughput"]["layers"]
    print(
        f"naive psd-tools loop : {base['s']:7.2f} s  {first['files'] / base['s']:6.2f} files/s  "
        f"{first['layers'] / base['s']:7.2f} layers/s (leaf layers rendered)  CPU {base['cpu']:6.1f} s  "
        f"peak RSS {max(run['rss'] for run in bases)} MiB  ({first['errors']} files raised)  [medians]"
    )
    print(
        f"layered psd build -j{args.workers}: {ours['s']:7.2f} s  {files / ours['s']:6.2f} files/s  "
        f"{layers / ours['s']:7.2f} layers/s (curated layers written)  CPU {ours['cpu']:6.1f} s  "
        f"peak RSS {max(run['rss'] for run in ours_runs)} MiB (largest process)  [medians]"
    )
    ratios = sorted(b["s"] / o["s"] for b, o in zip(bases, ours_runs, strict=True))
    print(
        f"speed-up: {statistics.median(ratios):.2f}x (median of {len(ratios)} interleaved rounds, wall time, "
        f"naive / ours, whole command incl. start-up; rounds {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"CPU ratio: {base['cpu'] / ours['cpu']:.2f}x (naive CPU seconds / ours, all processes; load-independent)")
    print(
        f"ours also: {report['by_outcome']} accepted share {report['accepted_share']:.3f}, "
        f"PSNR quantiles {report['psnr_quantiles_accepted']}, rejections {report['by_reason']}"
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
