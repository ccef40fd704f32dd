"""File structure, written: an 8-bit RGBA PSD of named pixel layers whose stored composite is ours.

Each layer is stored at its offset (off-canvas parts kept), with its opacity (PSD keeps 0-255) and hidden
flag; the merged image is our own composite, matted over white as Photoshop stores it, and the XMP packet
names the creator and carries the signature by which a later run knows the file is ours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from layered.ownership import GENERATOR, SIGNATURE_PLACEHOLDER, signed_path
from layered.pixels import composite_over
from layered.stack import LayerStack

MAX_NAME = 255  # PSD layer names hold at most 255 characters
_PSB_SIDE = 30000  # larger documents need the PSB (version 2) layout

# XMP packet of the files we write: the creator tool, and the signature `ownership.sign` fills in.
_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:layered="urn:layered:ns:1.0"'
    f' xmp:CreatorTool="{GENERATOR}" layered:signature="{SIGNATURE_PLACEHOLDER}"/>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def write_psd(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write `stack` as an 8-bit RGBA PSD, layers bottom-first, with our composite as the preview, atomically."""
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
    record.image_data.set_data(preview_planes(stack.composite()), header)
    record.image_resources[Resource.XMP_METADATA] = ImageResource(key=Resource.XMP_METADATA, data=_XMP.encode())
    with signed_path(path) as tmp, open(tmp, "wb") as f:  # signed: how a later run knows the file is ours
        record.write(f)
    return path


def preview_planes(rgba: np.ndarray) -> list[bytes]:
    """Planar R, G, B, A bytes of the merged image; colour matted over white where alpha > 0 (Photoshop's way)."""
    matted = np.where(rgba[..., 3:] == 0, rgba[..., :3], composite_over(rgba))
    planes = [np.ascontiguousarray(matted[..., c]).tobytes() for c in range(3)]
    planes.append(np.ascontiguousarray(rgba[..., 3]).tobytes())
    return planes
