"""Fidelity of `layered psd build` on the shared corpus: accepted rows vs the colour-managed stored composite.

Each accepted row's layers are recomposed with PIL's alpha_composite and compared with Photoshop's stored
composite in sRGB (the document's ICC profile applied by psd-tools / ImageCms, see
`tests/helpers.colour_managed_composite`), not with the builder's own reference. Prints the share of rows
at >= 40 dB and >= 30 dB, the lowest, and every row under 40 dB; `--strict-topil` also scores against
psd-tools' `topil()` unchanged (it un-mattes transparent documents after the profile transform).

    nice python benchmarks/bench_psd_fidelity.py [CORPUS_DIR] [--workers 2] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_CORPUS = ROOT.parent / "shared" / "psd-corpus"


def score(corpus: Path, dataset: Path, strict_topil: bool) -> list[tuple[str, float, float | None]]:
    """(source, dB vs the colour-managed stored composite, dB vs plain topil() or None) per accepted row."""
    import warnings

    from helpers import alpha_over_psnr, colour_managed_composite
    from psd_tools import PSDImage

    from psd_pipeline.dataset import iter_samples

    warnings.simplefilter("ignore")
    out = []
    for _id, _composite, layers, meta in iter_samples(dataset):
        if meta["reference"] != "stored":
            continue  # no stored composite to compare with (the builder used psd-tools' render)
        psd = PSDImage.open(corpus / meta["source"])
        value = alpha_over_psnr(layers, colour_managed_composite(psd))
        plain = None
        if strict_topil:
            managed = psd.topil()
            plain = alpha_over_psnr(layers, np.asarray(managed.convert("RGBA" if "A" in managed.mode else "RGB")))
        out.append((meta["source"], value, plain))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", type=Path, help="score an existing build instead of building")
    parser.add_argument("--strict-topil", action="store_true", help="also score against psd-tools' topil()")
    args = parser.parse_args()
    from psd_pipeline.build import BuildConfig, build

    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset
        seconds = 0.0
        if dataset is None:
            dataset = Path(tmp) / "dataset"
            start = time.perf_counter()
            report = build(
                BuildConfig(args.corpus, dataset, workers=args.workers, progress=False), log=lambda _message: None
            )
            seconds = time.perf_counter() - start
            print(f"build: {report['inputs']} files, {report['rows']} rows in {seconds:.1f} s")
        rows = score(args.corpus, dataset, args.strict_topil)
    values = np.array([v for _s, v, _p in rows])
    print(f"accepted rows with a stored composite: {len(values)}")
    print(f"  >= 40 dB: {np.mean(values >= 40):.1%} ({int(np.sum(values >= 40))})   goal >= 95%")
    print(f"  >= 30 dB: {np.mean(values >= 30):.1%}   lowest {values.min():.2f} dB   goal: none below 30")
    for source, value, plain in sorted(rows, key=lambda r: r[1]):
        if value < 40 or (plain is not None and plain < 40):
            extra = "" if plain is None else f"   (plain topil(): {plain:.2f} dB)"
            print(f"  {value:6.2f} dB  {source}{extra}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB (workers not counted)")


if __name__ == "__main__":
    main()
