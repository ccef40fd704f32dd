"""report.json figures from manifest records, against hand-counted values."""

from __future__ import annotations

from types import SimpleNamespace

from psd_pipeline.report import make_report
from psd_pipeline.sample import SampleOptions


def _record(outcome, reason=None, psnr=None, before=None, after=None):
    return {"outcome": outcome, "reason": reason, "psnr": psnr, "layers_before": before, "layers_after": after}


def test_counts_histogram_quantiles_and_throughput(tmp_path):
    records = [
        _record("accepted", psnr=50.0, before=3, after=2),
        _record("accepted", psnr=60.0, before=5, after=2),
        _record("accepted", psnr=70.0, before=1, after=1),
        _record("rejected", "low-psnr", psnr=20.0, before=2),
        _record("rejected", "color-mode"),
        _record("crashed", "worker-died"),
    ]
    config = SimpleNamespace(options=SampleOptions(), workers=2, out=tmp_path)
    report = make_report(records, run_files=6, run_layers=5, seconds=2.0, config=config)
    assert report["by_outcome"] == {"accepted": 3, "crashed": 1, "rejected": 2}
    assert report["by_reason"] == {"color-mode": 1, "low-psnr": 1, "worker-died": 1}
    assert report["accepted_share"] == 0.5
    assert report["layers_after_histogram"] == {"1": 1, "2": 2}
    assert report["psnr_quantiles_accepted"]["p50"] == 60.0
    assert report["psnr_quantiles_accepted"]["p0"] == 50.0
    assert report["psnr_quantiles_all_extracted"]["p0"] == 20.0
    assert report["throughput"]["files_per_s"] == 3.0 and report["throughput"]["layers_per_s"] == 2.5
