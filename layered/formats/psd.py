"""Photoshop PSD through psd-tools: write an RGBA document of named pixel layers, read layers for editing.

Writing stores each layer at its offset (off-canvas parts kept), its opacity (PSD keeps 0-255) and
hidden flag, plus a merged preview that is our own composite, matted over white as Photoshop stores it.
Reading walks psd-tools' layer tree: groups are flattened into their children (group visibility and
opacity folded in); plain pixel layers keep their exact pixels; layers psd-tools cannot hand over as
plain pixels (type, shape, smart object, fill, masked or clipped layers) are rasterised with
`layer.composite()`; adjustment layers are skipped. Each simplification is logged as a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from layered.errors import InputError
from layered.fileio import MAX_PIXELS, to_rgba_array
from layered.ownership import GENERATOR, SIGNATURE_PLACEHOLDER, signed_path
from layered.stack import Layer, LayerStack

logger = logging.getLogger(__name__)

SIGNATURE = b"8BPS"
MAX_NAME = 255  # PSD layer names hold at most 255 characters
_PSB_SIDE = 30000  # larger documents need the PSB (version 2) layout


def write(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write `stack` as an 8-bit RGBA PSD, layers bottom-first, with our composite as the preview."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer
    from psd_tools.constants import ColorMode, Compression, Resource, Tag
    from psd_tools.psd import PSD
    from psd_tools.psd.header import FileHeader
    from psd_tools.psd.image_data import ImageData
    from psd_tools.psd.image_resources import ImageResource, ImageResources
    from psd_tools.psd.layer_and_mask import GlobalLayerMaskInfo, LayerInfo
    from psd_tools.psd.tagged_blocks import TaggedBlocks

    path = Path(path)
    version = 2 if max(stack.width, stack.height) > _PSB_SIDE else 1
    header = FileHeader(
        version=version, width=stack.width, height=stack.height, depth=8, channels=4, color_mode=ColorMode.RGB
    )
    # Built on the low-level record so that the preview is ours: PSDImage.save() would re-render it with
    # psd-tools' compositor, which is slow on large canvases and would not be "our composite".
    record = PSD(header=header, image_data=ImageData(compression=Compression.RLE), image_resources=ImageResources.new())
    psd = PSDImage(record)
    for layer in stack.layers:
        pil = Image.fromarray(np.ascontiguousarray(layer.pixels), "RGBA")
        added = PixelLayer.frompil(pil, psd, name="Layer", top=layer.y, left=layer.x, compression=Compression.RLE)
        added.name = layer.name[:MAX_NAME]  # the setter keeps a Mac Roman fallback plus the Unicode name
        added.opacity = int(round(layer.opacity * 255))
        added.visible = layer.visible
    if psd.tagged_blocks is None:  # no layers: the layer section is only created on the first append
        info = record.layer_and_mask_information
        info.layer_info, info.global_layer_mask_info = LayerInfo(), GlobalLayerMaskInfo()
        info.tagged_blocks = TaggedBlocks()
    # "Mtrn": the merged image's extra channel is the composite's transparency
    psd.tagged_blocks.set_data(Tag.SAVING_MERGED_TRANSPARENCY)
    record.image_data.set_data(_preview_planes(stack.composite()), header)
    record.image_resources[Resource.XMP_METADATA] = ImageResource(key=Resource.XMP_METADATA, data=_XMP.encode())
    with signed_path(path) as tmp, open(tmp, "wb") as f:  # signed: how a later run knows the file is ours
        record.write(f)
    return path


# XMP packet of the files we write: the creator tool, and the signature `ownership.sign` fills in.
_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:layered="urn:layered:ns:1.0"'
    f' xmp:CreatorTool="{GENERATOR}" layered:signature="{SIGNATURE_PLACEHOLDER}"/>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def _preview_planes(rgba: np.ndarray) -> list[bytes]:
    """Planar R, G, B, A bytes of the merged image; colour matted over white where alpha > 0 (Photoshop's way)."""
    alpha = rgba[..., 3].astype(np.uint32)
    clear = alpha == 0
    planes = []
    for c in range(3):
        matted = (rgba[..., c] * alpha + 255 * (255 - alpha) + 127) // 255
        planes.append(np.where(clear, rgba[..., c], matted).astype(np.uint8).tobytes())
    planes.append(np.ascontiguousarray(rgba[..., 3]).tobytes())
    return planes


def read(path: str | os.PathLike) -> LayerStack:
    """A PSD/PSB as a LayerStack for editing; what had to be simplified is logged as warnings."""
    stack, notes = read_with_notes(path)
    for note in notes:
        logger.warning("%s: %s", path, note)
    return stack


def read_with_notes(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[LayerStack, list[str]]:
    """A PSD/PSB as a LayerStack, and one line per layer that was rasterised, skipped or approximated."""
    path = Path(path)
    psd = _open(path, max_pixels)
    notes: list[str] = []
    layers: list[Layer] = []
    try:
        _walk(psd, True, 1.0, "", layers, notes, max_pixels)
    except InputError:
        raise
    except Exception as exc:  # psd-tools on a damaged file: any parse error means "bad input"
        raise InputError(f"{path}: cannot read the layers of this PSD ({type(exc).__name__}: {exc})") from None
    return LayerStack(psd.width, psd.height, tuple(layers)), notes


def _open(path: Path, max_pixels: int):
    from psd_tools import PSDImage

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:4] != SIGNATURE:
        raise InputError(f"{path}: not a PSD file (no 8BPS signature)")
    width, height = int.from_bytes(head[18:22], "big"), int.from_bytes(head[14:18], "big")
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: invalid PSD canvas size {width} x {height}")
    if width * height > max_pixels:
        raise InputError(f"{path}: PSD is {width}x{height}, larger than the limit of {max_pixels} pixels")
    try:
        return PSDImage.open(path)
    except Exception as exc:  # truncated or corrupt: struct/value/EOF errors from the parser
        raise InputError(f"{path}: not a readable PSD ({type(exc).__name__}: {exc})") from None


def _walk(group, visible: bool, opacity: float, prefix: str, out: list[Layer], notes: list[str], max_pixels: int):
    """Append the layers of `group` bottom-first to `out`, folding group visibility and opacity in."""
    from psd_tools.api.layers import AdjustmentLayer

    for layer in group:
        label = f"{prefix}{layer.name}"
        if layer.is_group():
            if layer.blend_mode.name not in ("PASS_THROUGH", "NORMAL"):
                notes.append(f"group {label!r}: blend mode {layer.blend_mode.name} flattened as normal")
            _walk(layer, visible and layer.visible, opacity * layer.opacity / 255, f"{label}/", out, notes, max_pixels)
            continue
        if layer.clipping and _clip_base(layer) is not None:
            continue  # drawn into its base layer's rasterisation
        if isinstance(layer, AdjustmentLayer):
            notes.append(f"layer {label!r}: {layer.kind} adjustment layer skipped (no pixels of its own)")
            continue
        if max(layer.width, 0) * max(layer.height, 0) > max_pixels:
            notes.append(f"layer {label!r}: {layer.width}x{layer.height} is over the size limit, skipped")
            continue
        if layer.blend_mode.name != "NORMAL":
            notes.append(f"layer {label!r}: blend mode {layer.blend_mode.name} flattened as normal")
        reason = _why_not_plain(layer)
        pil = layer.topil() if reason is None and layer.has_pixels() else None
        if pil is not None and pil.mode not in ("RGBA", "LA", "RGB", "L"):
            reason = f"{pil.mode} pixels"  # e.g. CMYK: topil() drops the transparency
        if reason is None:
            pixels = to_rgba_array(pil) if pil is not None else np.zeros((0, 0, 4), np.uint8)
            left, top, own_opacity = layer.left, layer.top, layer.opacity / 255
        else:
            pixels = _rasterise(layer)
            left, top = layer.bbox[:2]
            own_opacity = 1.0  # composite() has applied the layer's opacity and fill already
            notes.append(f"layer {label!r}: rasterised ({reason})")
        if pixels.size == 0:
            left = top = 0
        out.append(Layer(pixels, left, top, layer.name, opacity * own_opacity, visible and layer.visible))


def _why_not_plain(layer) -> str | None:
    """Why the stored channels of `layer` are not what it shows (None for a plain pixel layer)."""
    if layer.kind != "pixel":
        return f"{layer.kind} layer"
    if layer.has_clip_layers():
        return "clipping layers merged in"
    if layer.has_mask() or layer.has_vector_mask():
        return "mask applied"
    if layer.has_effects() and any(effect.enabled for effect in layer.effects):
        return "layer effects applied"
    if layer.fill_opacity != 255:
        return "fill opacity applied"
    return None


def _rasterise(layer) -> np.ndarray:
    """The layer as psd-tools renders it (masks, clipping, effects) over its bbox, hidden or not."""
    image = layer.composite(layer_filter=lambda other: other is layer or other.visible)
    return to_rgba_array(image) if image is not None else np.zeros((0, 0, 4), np.uint8)


def _clip_base(layer):
    """The layer that the clipping layer `layer` clips to, or None."""
    siblings = list(layer.parent) if layer.parent is not None else []
    if layer not in siblings:
        return None
    for below in reversed(siblings[: siblings.index(layer)]):
        if not below.clipping:
            return below
    return None
