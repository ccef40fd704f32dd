"""The editor's reading of a PSD/PSB: what you open is what Photoshop shows, and every simplification is said.

- Layers stay separate and editable (hidden ones hidden, opacity kept) wherever that keeps the composite
  faithful; what cannot stand alone (clipping, adjustments, non-normal blends, isolated groups) is merged by
  the core's rules (`layered.psd.tree`) into one pixel layer named after the subtree.
- The result is checked against the stored composite (`layered.psd.fidelity.worst_over_psnr`); below
  `MIN_PSNR` the more conservative readings are tried, and if none reaches it the document opens as one
  layer holding Photoshop's stored composite.
- Documents whose colour mode is not converted (Lab, indexed, bitmap, duotone, multichannel) and flat
  documents open as their stored composite too.
Each of these is one short note in `LayerStack.notes`.
"""

from __future__ import annotations

import os

import numpy as np

from layered.fileio import MAX_PIXELS
from layered.psd import header as psd_header
from layered.psd.errors import Rejected
from layered.psd.extract import EDITOR, Extraction, guarded_reference, variants_of
from layered.psd.fidelity import worst_over_psnr
from layered.psd.header import CONVERTIBLE_MODES
from layered.stack import Layer, LayerStack

MIN_PSNR = 40.0  # dB, worse of over black / over white against the stored composite
# The stricter readings (psd-tools' full render first, then every prefix of the stack re-rendered) are tried
# only after a near miss: a default reading of 2 to MAX_VERIFIED_LAYERS layers that reaches NEAR_MISS_PSNR.
# With one layer there is nothing to merge; past the layer limit the prefix renders cost more than opening
# the stored composite is worth; far below the target psd-tools cannot draw something in the file, which no
# other grouping of its renders fixes (on the corpus the stricter readings rescue 3-5 layer files at 30-38 dB).
NEAR_MISS_PSNR = 30.0
MAX_VERIFIED_LAYERS = 8
_LISTED = 3  # names listed in one note before "and N more"


def read_document(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LayerStack:
    """The document as a LayerStack whose `notes` say what was simplified; bad files raise Rejected."""
    psd, header = psd_header.open_psd(path, max_pixels)
    if header.color_mode not in CONVERTIBLE_MODES:
        return _as_composite(psd, f"{header.color_mode} document: opened as its stored composite, one layer")
    if len(psd) == 0:
        return _as_composite(psd, "no layers in the file: opened as its stored composite, one layer")
    best: tuple[float, Extraction] | None = None
    cache: dict = {}
    try:
        for extraction in variants_of(psd, header, MIN_PSNR, EDITOR, cache):
            value = worst_over_psnr(extraction.stack.composite(), extraction.reference)
            if best is None or value > best[0]:
                best = (value, extraction)
            shown = sum(layer.visible for layer in extraction.stack)
            if value >= MIN_PSNR or value < NEAR_MISS_PSNR or not 2 <= shown <= MAX_VERIFIED_LAYERS:
                break
    except Rejected as exc:
        if best is None:
            note = f"layers not read ({exc.detail}): opened as its stored composite, one layer"
            return _as_composite(psd, note, cache)
    value, extraction = best
    if value < MIN_PSNR:
        source = "Photoshop's stored composite" if extraction.reference_kind == "stored" else "psd-tools' render"
        note = f"the layers reproduce the image only to {value:.1f} dB: opened as {source}, one layer"
        return _as_composite(psd, note, cache)
    notes = extraction.notes + layer_notes(extraction)
    if extraction.reference_kind != "stored":
        notes.append("no stored composite in the file: checked against psd-tools' render")
    return extraction.stack.replace(notes=tuple(notes))


def layer_notes(extraction: Extraction) -> list[str]:
    """One note per merged or flattened layer, and one listing the layers rasterised to pixels."""
    notes, rasterised = [], []
    nodes = extraction.nodes
    for layer, kind, sources in zip(extraction.stack.layers, extraction.kinds, extraction.layer_nodes, strict=True):
        root = nodes[sources[0]]
        if kind == "group":
            why = root.action.partition("(")[2].rpartition(")")[0] or "cannot be kept as layers"
            notes.append(f"group {layer.name!r} merged into one layer ({why})")
        elif kind == "merged":
            top = next((nodes[i] for i in reversed(sources) if "merged with" in nodes[i].action), nodes[sources[-1]])
            how = (
                top.kind.partition(":")[2].lower() + " adjustment" if ":" in top.kind else f"{top.blend.lower()} blend"
            )
            notes.append(f"{layer.name!r} ({how}) merged with the {len(sources) - 1} layer(s) it changes")
        elif "clipping group baked in" in root.action:
            notes.append(f"{layer.name!r}: the layers clipped to it baked in")
        elif kind != "pixel":
            rasterised.append(f"{layer.name!r} ({kind.partition(':')[0]})")
    if rasterised:
        more = f" and {len(rasterised) - _LISTED} more" if len(rasterised) > _LISTED else ""
        notes.append(f"rasterised to pixels: {', '.join(rasterised[:_LISTED])}{more}")
    return notes


def _as_composite(psd, note: str, cache: dict | None = None) -> LayerStack:
    """The document as one layer holding its stored composite in sRGB (psd-tools' render when it has none)."""
    if psd_header.COLOR_MODES.get(int(psd.color_mode)) not in CONVERTIBLE_MODES:
        reference = _converted_preview(psd)
    else:
        reference, _kind = guarded_reference(psd, {} if cache is None else cache)
    pixels = _rgba(reference)
    if not pixels[..., 3].any():  # nothing shows: an empty document, not a transparent layer
        return LayerStack(psd.width, psd.height, notes=() if len(psd) == 0 else (note.partition(":")[0],))
    return LayerStack(psd.width, psd.height, (Layer(pixels, 0, 0, "Composite"),), notes=(note,))


def _converted_preview(psd) -> np.ndarray:
    """The stored composite of a document in a mode we do not convert, as psd-tools' `topil()` converts it."""
    try:
        image = psd.topil()
    except Exception as exc:  # psd-tools cannot convert this mode either
        raise Rejected("color-mode", f"cannot convert its stored composite ({type(exc).__name__})") from None
    if image is None:
        raise Rejected("color-mode", "no stored composite to show, and its layers are not converted")
    if image.mode == "LAB":
        image = lab_to_srgb(image)
    return np.asarray(image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"))


def lab_to_srgb(image):
    """A Lab image as psd-tools reads it (a and b offset by 128, as PSD stores them) -> sRGB, by ImageCms.

    Pillow's LAB mode holds a and b as signed bytes, so their high bit is flipped first.
    """
    from PIL import Image, ImageCms

    data = np.array(image)
    data[..., 1:] ^= 0x80
    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(Image.fromarray(data, "LAB"), transform)


def _rgba(reference: np.ndarray) -> np.ndarray:
    """A reference as RGBA: a flattened (RGB) composite is opaque."""
    if reference.shape[2] == 4:
        return reference
    return np.concatenate([reference, np.full(reference.shape[:2] + (1,), 255, np.uint8)], axis=2)
