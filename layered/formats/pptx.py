"""PowerPoint (.pptx) export with python-pptx: one slide of the canvas size, one picture per layer.

Pictures keep their layer's name, offset (pixels map to a whole number of EMU, 96 dpi unless the
canvas is outside PowerPoint's slide-size range), hidden flag and opacity (`a:alphaModFix`), in
bottom-first z-order. Write only.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from layered.errors import LayeredError
from layered.ownership import SIGNATURE_PLACEHOLDER, signed_path
from layered.stack import LayerStack

EMU_PER_PX = 9525  # 914400 EMU per inch at 96 px per inch
MIN_SLIDE_EMU, MAX_SLIDE_EMU = 914400, 51206400  # PowerPoint's slide side range (1 to 56 inches)
_BLANK_LAYOUT = 6


def emu_per_pixel(width: int, height: int) -> int:
    """EMU per canvas pixel: 96 dpi, scaled (to a whole number) so the slide fits PowerPoint's limits."""
    longest, shortest = max(width, height), min(width, height)
    if longest * EMU_PER_PX > MAX_SLIDE_EMU:
        return max(1, MAX_SLIDE_EMU // longest)
    if shortest * EMU_PER_PX < MIN_SLIDE_EMU:
        return min(-(-MIN_SLIDE_EMU // shortest), MAX_SLIDE_EMU // longest)
    return EMU_PER_PX


def write(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write `stack` as a one-slide presentation, atomically."""
    try:
        from pptx import Presentation
        from pptx.oxml.ns import qn
    except ImportError:
        raise LayeredError("PPTX export needs python-pptx: pip install 'layered[pptx]'") from None

    path = Path(path)
    scale = emu_per_pixel(stack.width, stack.height)
    prs = Presentation()
    prs.slide_width, prs.slide_height = stack.width * scale, stack.height * scale
    slide = prs.slides.add_slide(prs.slide_layouts[_BLANK_LAYOUT])
    for layer in stack.layers:  # added in order: later shapes are drawn on top
        pixels = layer.pixels if layer.pixels.size else np.zeros((1, 1, 4), np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(buffer, format="PNG")
        buffer.seek(0)
        height, width = pixels.shape[:2]
        picture = slide.shapes.add_picture(
            buffer, layer.x * scale, layer.y * scale, width=width * scale, height=height * scale
        )
        picture.name = layer.name
        picture.element.nvPicPr.cNvPr.set("descr", layer.name)  # alt text
        if not layer.visible:
            picture.element.nvPicPr.cNvPr.set("hidden", "1")
        if layer.opacity < 1.0:
            blip = picture.element.blipFill.find(qn("a:blip"))
            fix = blip.makeelement(qn("a:alphaModFix"), {"amt": str(round(layer.opacity * 100000))})
            blip.insert(0, fix)
    with signed_path(path) as tmp:
        prs.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.comment = SIGNATURE_PLACEHOLDER.encode()  # how a later run knows the file is ours (layered.ownership)
    return path
