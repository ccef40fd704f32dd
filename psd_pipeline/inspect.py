"""`layered psd inspect FILE`: the layer tree, what each rule did, and the resulting fidelity."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from layered.psd.errors import Rejected
from layered.psd.header import read_header
from psd_pipeline.sample import SampleOptions, best_attempt


def inspect_file(
    path: str | os.PathLike, max_layers: int = 20, min_visible: float = 1e-4, min_psnr: float = 40.0
) -> dict:
    """Everything the builder would decide for this file, as a JSON-able dict (never raises on bad files)."""
    path = Path(path)
    report: dict = {"file": str(path), "verdict": "rejected", "reason": None, "detail": None}
    try:
        header = read_header(path)
        report["header"] = dataclasses.asdict(header)
        options = SampleOptions(max_layers=max_layers, min_visible=min_visible, min_psnr=min_psnr)
        value, extraction, curated, first = best_attempt(path, options)
    except Rejected as exc:
        report["reason"], report["detail"] = exc.reason, exc.detail
        return report
    report["reference"] = extraction.reference_kind
    report["rules"] = extraction.rules
    report["psd_tools_psnr"] = None if first.psd_tools_psnr is None else round(first.psd_tools_psnr, 3)
    report["tree"] = [dataclasses.asdict(node) for node in extraction.nodes]
    report["extracted"] = [
        {"name": layer.name, "kind": kind, "bbox": list(layer.bbox), "sources": sources}
        for layer, kind, sources in zip(extraction.stack.layers, extraction.kinds, extraction.layer_nodes, strict=True)
    ]
    report["merges"] = extraction.merges
    report["dropped"] = curated.dropped
    report["curation_merges"] = curated.merges
    report["layers"] = [
        {"name": layer.name, "kind": kind, "bbox": list(layer.bbox)}
        for layer, kind in zip(curated.stack.layers, curated.kinds, strict=True)
    ]
    report["psnr"] = round(value, 3)
    report["min_psnr"] = min_psnr
    if value >= min_psnr:
        report["verdict"] = "accepted"
    else:
        report["reason"] = "low-psnr"
        report["detail"] = f"recomposited layers reach {value:.2f} dB < {min_psnr} dB"
    return report


def format_report(report: dict) -> str:
    """A human-readable rendering of `inspect_file`'s report."""
    lines = [f"file: {report['file']}"]
    header = report.get("header")
    if header:
        lines.append(
            f"canvas: {header['width']}x{header['height']}, {header['color_mode']}, {header['depth']}-bit, "
            f"{'PSB' if header['version'] == 2 else 'PSD'}"
        )
    if "tree" in report:
        lines.append(f"reference composite: {report['reference']}")
        lines.append("layer tree (bottom first):")
        for node in report["tree"]:
            indent = "  " * (node["depth"] + 1)
            flags = "" if node["visible"] else " hidden"
            flags += " clipped" if node["clipping"] else ""
            lines.append(
                f"{indent}[{node['index']}] {node['name']!r} {node['kind']} {node['blend'].lower()} "
                f"opacity {node['opacity']} bbox {tuple(node['bbox'])}{flags}"
            )
            lines.append(f"{indent}    -> {node['action']}")
        for merge in report["merges"]:
            lines.append(f"interaction merge: {merge}")
        for drop in report["dropped"]:
            lines.append(f"dropped: {drop}")
        for merge in report["curation_merges"]:
            lines.append(f"count merge: {merge}")
        lines.append(f"result: {len(report['layers'])} layer(s), bottom first:")
        for i, layer in enumerate(report["layers"]):
            lines.append(f"  {i}: {layer['name']!r} ({layer['kind']}) bbox {tuple(layer['bbox'])}")
        lines.append(f"rules: {report['rules']}")
        lines.append(f"fidelity: {report['psnr']:.2f} dB against the {report['reference']} composite")
        if report["psd_tools_psnr"] is not None:
            lines.append(f"psd-tools' own full composite: {report['psd_tools_psnr']:.2f} dB")
    verdict = report["verdict"]
    if verdict == "accepted":
        lines.append(f"verdict: accepted (gate {report['min_psnr']} dB)")
    else:
        lines.append(f"verdict: rejected: {report['reason']}: {report['detail']}")
    return "\n".join(lines)
