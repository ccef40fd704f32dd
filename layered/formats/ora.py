"""OpenRaster (.ora), the open layered format of Krita, GIMP and MyPaint.

A ZIP whose first entry is `mimetype` (stored, "image/openraster"), then `stack.xml` (layers
top-first, each with src, x, y, opacity, visibility, name), `data/*.png`, `mergedimage.png` and
`Thumbnails/thumbnail.png` (at most 256 px). Reading takes layer PNGs only from inside the archive
(extracted to a temporary folder under size limits) and folds nested stacks into their layers.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from layered.errors import InputError
from layered.fileio import open_image, resolve_inside, to_rgba_array
from layered.formats.zip import extract, open_zip
from layered.ownership import SIGNATURE_PLACEHOLDER, signed_path
from layered.stack import Layer, LayerStack, check_canvas

logger = logging.getLogger(__name__)

MIMETYPE = "image/openraster"
THUMBNAIL_SIDE = 256
MAX_STACK_XML = 16 * 1024**2
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# characters XML 1.0 cannot carry (control characters in layer names from other files)
_XML_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write `stack` as an OpenRaster file, atomically."""
    path = Path(path)
    image = ET.Element("image", version="0.0.5", w=str(stack.width), h=str(stack.height))
    root = ET.SubElement(image, "stack")
    merged = stack.composite()
    with signed_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        zf.comment = SIGNATURE_PLACEHOLDER.encode()  # how a later run knows the file is ours (layered.ownership)
        zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for i in reversed(range(len(stack))):  # stack.xml lists the top layer first
            layer = stack[i]
            src = f"data/layer{i:03d}.png"
            ET.SubElement(
                root,
                "layer",
                name=_XML_INVALID.sub("", layer.name),
                src=src,
                x=str(layer.x),
                y=str(layer.y),
                opacity=repr(layer.opacity),
                visibility="visible" if layer.visible else "hidden",
                **{"composite-op": "svg:src-over"},
            )
            pixels = layer.pixels if layer.pixels.size else np.zeros((1, 1, 4), np.uint8)
            zf.writestr(src, _png_bytes(pixels))
        xml = ET.tostring(image, encoding="UTF-8", xml_declaration=True)
        zf.writestr("stack.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("mergedimage.png", _png_bytes(merged))
        zf.writestr("Thumbnails/thumbnail.png", _png_bytes(_thumbnail(merged)))
    return path


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    """The image scaled to fit THUMBNAIL_SIDE, never enlarged (Pillow resizes RGBA premultiplied)."""
    height, width = pixels.shape[:2]
    scale = THUMBNAIL_SIDE / max(width, height)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGBA")
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def read(path: str | os.PathLike) -> LayerStack:
    """An OpenRaster file as a LayerStack (bottom-first)."""
    path = Path(path)
    with open_zip(path) as zf, tempfile.TemporaryDirectory(prefix="layered-ora-") as tmp:
        names = set(zf.namelist())
        if "mimetype" in names and (
            zf.getinfo("mimetype").file_size > 64 or zf.read("mimetype").strip() != MIMETYPE.encode()
        ):
            raise InputError(f"{path}: not an OpenRaster file (mimetype is not {MIMETYPE})")
        if "stack.xml" not in names:
            raise InputError(f"{path}: no stack.xml (not an OpenRaster file)")
        if zf.getinfo("stack.xml").file_size > MAX_STACK_XML:
            raise InputError(f"{path}: stack.xml is too large")
        try:
            image = ET.fromstring(zf.read("stack.xml"))
            width, height = int(image.get("w", "")), int(image.get("h", ""))
        except (ET.ParseError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path}: malformed stack.xml ({exc})") from None
        root = image.find("stack")
        if image.tag != "image" or root is None or width <= 0 or height <= 0:
            raise InputError(f"{path}: stack.xml has no <image w h> with a <stack>")
        check_canvas(width, height, path)
        entries: list[_Placed] = []
        _collect(root, _Placed(root, 0, 0, 1.0, True), entries, path)
        sources = sorted({entry.element.get("src", "") for entry in entries})
        for src in sources:
            if not src.lower().endswith(".png") or src not in names:
                raise InputError(f"{path}: layer source {src!r} is not a PNG inside the archive")
        extract(zf, tmp, sources, source=path)
        layers = [_layer(entry, tmp, path) for entry in entries]
    return LayerStack(width, height, tuple(layers))


class _Placed(NamedTuple):
    """An element of stack.xml with its offset, opacity and visibility, those of the stacks above folded in."""

    element: ET.Element
    x: int
    y: int
    opacity: float
    visible: bool


def _collect(stack: ET.Element, parent: _Placed, out: list[_Placed], path: Path) -> None:
    """Append the layer elements of `stack` (placed within `parent`) bottom-first; nested stacks fold in."""
    for child in reversed(list(stack)):  # children are listed top-first
        try:
            x, y = parent.x + int(child.get("x", "0")), parent.y + int(child.get("y", "0"))
            own = float(child.get("opacity", "1"))
            if not math.isfinite(own):
                raise ValueError(f"opacity {own}")
            alpha = parent.opacity * min(max(own, 0.0), 1.0)
        except ValueError as exc:
            raise InputError(f"{path}: malformed <{child.tag}> in stack.xml ({exc})") from None
        placed = _Placed(child, x, y, alpha, parent.visible and child.get("visibility", "visible") != "hidden")
        op = child.get("composite-op", "svg:src-over")
        if op != "svg:src-over":
            logger.warning("%s: %s %r: composite-op %s read as svg:src-over", path, child.tag, child.get("name"), op)
        if child.tag == "stack":
            _collect(child, placed, out, path)
        elif child.tag == "layer":
            out.append(placed)
        else:
            logger.warning("%s: <%s> element skipped (not a pixel layer)", path, child.tag)


def _layer(placed: _Placed, folder: str, path: Path) -> Layer:
    src = placed.element.get("src", "")
    file = resolve_inside(folder, src)
    with open(file, "rb") as f:
        if f.read(len(_PNG_MAGIC)) != _PNG_MAGIC:
            raise InputError(f"{path}: layer source {src!r} is not a PNG")
    try:
        pixels = to_rgba_array(open_image(file))
    except InputError as exc:  # name the member, not the temporary file
        raise InputError(f"{path}: {str(exc).replace(str(file), src)}") from None
    return Layer(pixels, placed.x, placed.y, placed.element.get("name", ""), placed.opacity, placed.visible)
