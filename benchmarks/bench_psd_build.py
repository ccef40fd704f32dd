"""Benchmark: `layered psd build --workers 2` on the shared corpus vs the naive psd-tools loop, same run.

The naive loop (from issue 3): for each file, `layer.composite(viewport=psd.viewbox)` for every visible
leaf layer, then `psd.composite(force=True)`. Ours also curates, checks fidelity against the stored
composite, encodes PNGs and writes Parquet shards + manifest. Each side runs in its own process; peak
RSS is that of the largest process (the builder's workers included).

    python benchmarks/bench_psd_build.py [CORPUS_DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "psd-corpus"


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
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed with status {proc.returncode}")
    return seconds, usage.ru_maxrss // 1024, text, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus = Path(args.corpus)
    if args.naive:
        naive(corpus)
        return
    base_s, base_rss, base_out, base_cpu = timed([sys.executable, __file__, str(corpus), "--naive"])
    base = json.loads(base_out.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        command = [sys.executable, "-m", "layered", "psd", "build", str(corpus), "-o", str(out)]
        ours_s, ours_rss, _, ours_cpu = timed([*command, "--workers", str(args.workers), "--no-progress"])
        report = json.loads((out / "report.json").read_text())
    files, layers = report["inputs"], report["throughput"]["layers"]
    print(f"corpus: {corpus} ({files} files)")
    print(
        f"naive psd-tools loop : {base_s:7.2f} s  {base['files'] / base_s:6.2f} files/s  "
        f"{base['layers'] / base_s:7.2f} layers/s (leaf layers rendered)  CPU {base_cpu:6.1f} s  "
        f"peak RSS {base_rss} MiB  "
        f"({base['errors']} files raised)"
    )
    print(
        f"layered psd build -j{args.workers}: {ours_s:7.2f} s  {files / ours_s:6.2f} files/s  "
        f"{layers / ours_s:7.2f} layers/s (curated layers written)  CPU {ours_cpu:6.1f} s  "
        f"peak RSS {ours_rss} MiB (largest process)"
    )
    print(f"speed-up: {base_s / ours_s:.2f}x (wall time, naive / ours, whole command incl. start-up)")
    print(f"CPU ratio: {base_cpu / ours_cpu:.2f}x (naive CPU seconds / ours, all processes; load-independent)")
    print(
        f"ours also: {report['by_outcome']} accepted share {report['accepted_share']:.3f}, "
        f"PSNR quantiles {report['psnr_quantiles_accepted']}, rejections {report['by_reason']}"
    )


if __name__ == "__main__":
    main()
