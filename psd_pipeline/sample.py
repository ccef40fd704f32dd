"""One PSD file -> one outcome: a manifest record, and for an accepted file the dataset row."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from layered.fileio import MAX_PIXELS
from layered.psd.errors import Rejected
from layered.psd.extract import Extraction, extract_variants
from layered.psd.fidelity import psnr
from layered.stack import LayerStack
from psd_pipeline.curate import CurationOptions, curate, downscale_image


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """Everything that decides a file's outcome (recorded in the build state so --resume can check it)."""

    max_layers: int = 20
    min_visible: float = 1e-4
    max_side: int | None = None
    min_psnr: float = 40.0
    max_pixels: int = MAX_PIXELS
    caption: str = "none"  # none | names (vlm captions are added by the builder, not per file)

    @property
    def curation(self) -> CurationOptions:
        return CurationOptions(self.max_layers, self.min_visible, self.max_side)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_id(relative: str, sha256: str) -> str:
    """Stable id: content hash plus path hash (the same file at two paths gives two rows)."""
    return f"{sha256[:16]}-{hashlib.sha1(relative.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def process_file(path: str | os.PathLike, relative: str, options: SampleOptions) -> dict:
    """The manifest record (`record`) and, when accepted, the dataset row (`row`) for one file.

    Never raises for a bad file: every failure becomes a rejected record with a reason.
    """
    start = time.perf_counter()
    record = {"path": relative, "sha256": None, "outcome": "rejected", "reason": None, "detail": None}
    record.update({"psnr": None, "layers_before": None, "layers_after": None, "reference": None})
    row = None
    try:
        record["sha256"] = sha256_file(path)
        row = _accept(Path(path), relative, record, options)
        record["outcome"] = "accepted"
    except Rejected as exc:
        record["reason"], record["detail"] = exc.reason, exc.detail
    except MemoryError:
        record["reason"], record["detail"] = "out-of-memory", "ran out of memory"
    except OSError as exc:
        record["reason"], record["detail"] = "unreadable", f"cannot read the file ({exc})"
    except Exception as exc:  # a psd-tools bug on a strange file is an outcome, not a dead build
        record["reason"], record["detail"] = "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    record["seconds"] = round(time.perf_counter() - start, 4)
    return {"record": record, "row": row}


def best_attempt(path: str | os.PathLike, options: SampleOptions, record: dict | None = None):
    """(psnr, extraction, curated, first extraction): the finest extraction that passes the gate, else the best."""
    record = {} if record is None else record
    attempt, first = None, None
    for extraction in extract_variants(path, options.max_pixels, options.min_psnr):
        first = first or extraction
        candidate = _attempt(extraction, record, options)
        if attempt is None or candidate[0] > attempt[0]:
            attempt = candidate
        if attempt[0] >= options.min_psnr:
            break
    return (*attempt, first)


def _accept(path: Path, relative: str, record: dict, options: SampleOptions) -> dict:
    value, extraction, curated, first = best_attempt(path, options, record)
    record["psnr"] = round(value, 3)
    record["layers_before"] = len(extraction.stack)
    record["layers_after"] = len(curated.stack)
    record["reference"] = extraction.reference_kind
    if value < options.min_psnr:
        detail = f"recomposited layers reach {value:.2f} dB < {options.min_psnr} dB (--min-psnr)"
        if first.psd_tools_psnr is not None and first.psd_tools_psnr < options.min_psnr:
            detail += (
                f"; psd-tools' own full composite reaches {first.psd_tools_psnr:.2f} dB (a feature it cannot render)"
            )
        raise Rejected("low-psnr", detail)
    stack = curated.stack
    names = [layer.name for layer in stack.layers]
    meta = {
        "source": relative,
        "sha256": record["sha256"],
        "width": stack.width,
        "height": stack.height,
        "original_size": [extraction.header.width, extraction.header.height],
        "scale": curated.scale,
        "color_mode": extraction.header.color_mode,
        "color_profile": extraction.color_profile,
        "depth": extraction.header.depth,
        "layer_names": names,
        "layer_kinds": curated.kinds,
        "layer_bboxes": [list(layer.bbox) for layer in stack.layers],
        "merges": extraction.merges + curated.merges,
        "dropped": curated.dropped,
        "rules": extraction.rules,
        "psnr": record["psnr"],
        "reference": extraction.reference_kind,
        "layers_before": record["layers_before"],
        "caption": names_caption(extraction.texts, names) if options.caption == "names" else "",
    }
    return {
        "id": sample_id(relative, record["sha256"]),
        "composite": encode_png(curated.composite),
        "layers": [encode_png(full_canvas(layer, stack.width, stack.height)) for layer in stack.layers],
        "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True),
    }


def _attempt(extraction: Extraction, record: dict, options: SampleOptions):
    record["layers_before"] = len(extraction.stack)
    curated = curate(extraction.stack, extraction.kinds, options.curation)
    reference = extraction.reference
    if curated.scale != 1.0:
        reference = downscale_image(reference, curated.stack.size)
    curated.composite = curated.stack.composite()
    value = psnr(curated.composite, reference)
    return value, extraction, curated


def names_caption(texts: list[str], names: list[str]) -> str:
    """The `names` caption: text-layer contents, then layer names (deduplicated, in order)."""
    seen: list[str] = []
    for text in [*texts, *names]:
        text = " ".join(str(text).split())
        if text and text not in seen:
            seen.append(text)
    return "; ".join(seen)


def full_canvas(layer, width: int, height: int) -> np.ndarray:
    """A layer (opacity 1, as extraction makes them) pasted on a transparent canvas: uint8 copy, no blending."""
    if layer.opacity != 1.0 or not layer.visible:
        return LayerStack(width, height, (layer.replace(visible=True),)).composite()
    out = np.zeros((height, width, 4), np.uint8)
    left, top = max(layer.x, 0), max(layer.y, 0)
    right, bottom = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    if right > left and bottom > top:
        out[top:bottom, left:right] = layer.pixels[top - layer.y : bottom - layer.y, left - layer.x : right - layer.x]
    return out


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
