"""`report.json`: counts by outcome and reason, layer-count histogram, PSNR quantiles, throughput."""

from __future__ import annotations

from collections import Counter

import numpy as np


def make_report(records: list[dict], run_files: int, run_layers: int, seconds: float, config) -> dict:
    """Summary of a build from its manifest records (all of them) and this run's timing."""
    accepted = [r for r in records if r["outcome"] == "accepted"]
    psnrs = np.array([r["psnr"] for r in accepted], dtype=np.float64)
    all_psnrs = np.array([r["psnr"] for r in records if r.get("psnr") is not None], dtype=np.float64)
    quantiles = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
    return {
        "inputs": len(records),
        "by_outcome": dict(sorted(Counter(r["outcome"] for r in records).items())),
        "by_reason": dict(sorted(Counter(r["reason"] for r in records if r["outcome"] != "accepted").items())),
        "accepted_share": round(len(accepted) / len(records), 4) if records else 0.0,
        "layers_after_histogram": _histogram(r["layers_after"] for r in accepted),
        "layers_before_histogram": _histogram(r["layers_before"] for r in accepted),
        "psnr_quantiles_accepted": _quantiles(psnrs, quantiles),
        "psnr_quantiles_all_extracted": _quantiles(all_psnrs, quantiles),
        "min_psnr": config.options.min_psnr,
        "shards": _count_shards(config),
        "rows": len(accepted),
        "throughput": {
            "files": run_files,
            "layers": run_layers,
            "seconds": round(seconds, 3),
            "files_per_s": round(run_files / seconds, 3) if seconds > 0 else None,
            "layers_per_s": round(run_layers / seconds, 3) if seconds > 0 else None,
            "workers": config.workers,
        },
    }


def _histogram(values) -> dict[str, int]:
    counts = Counter(int(v) for v in values if v is not None)
    return {str(k): counts[k] for k in sorted(counts)}


def _quantiles(values: np.ndarray, qs) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"p{int(q * 100)}": round(float(np.quantile(values, q)), 3) for q in qs}


def _count_shards(config) -> int:
    import json

    parts = sorted((config.out / ".build" / "parts").glob("*.json"))
    return sum(json.loads(p.read_text(encoding="utf-8"))["shard"] is not None for p in parts)
