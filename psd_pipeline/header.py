"""Read and check a PSD/PSB file header before psd-tools allocates anything for it."""

from __future__ import annotations

import dataclasses
import os
import struct

from layered.fileio import MAX_PIXELS
from psd_pipeline.errors import Rejected

# Colour modes as numbered in the PSD header.
COLOR_MODES = {
    0: "bitmap",
    1: "grayscale",
    2: "indexed",
    3: "rgb",
    4: "cmyk",
    7: "multichannel",
    8: "duotone",
    9: "lab",
}
# Modes whose layers psd-tools renders and converts to 8-bit RGBA.
CONVERTIBLE_MODES = ("grayscale", "rgb", "cmyk")


@dataclasses.dataclass(frozen=True)
class PsdHeader:
    """The fixed 26-byte header of a PSD (version 1) or PSB (version 2) file."""

    version: int
    channels: int
    height: int
    width: int
    depth: int
    color_mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(path: str | os.PathLike) -> PsdHeader:
    """Parse the header; anything that is not a PSD/PSB header is Rejected."""
    try:
        with open(path, "rb") as f:
            data = f.read(26)
    except OSError as exc:
        raise Rejected("unreadable", f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) < 26:
        raise Rejected("not-psd", f"truncated header ({len(data)} bytes)")
    signature, version, _reserved, channels, height, width, depth, mode = struct.unpack(">4sH6sHIIHH", data)
    if signature != b"8BPS":
        raise Rejected("not-psd", f"not a PSD file (signature {signature!r})")
    if version not in (1, 2):
        raise Rejected("bad-header", f"unknown PSD version {version}")
    if depth not in (1, 8, 16, 32):
        raise Rejected("bad-header", f"invalid bit depth {depth}")
    if not 1 <= channels <= 56:
        raise Rejected("bad-header", f"invalid channel count {channels}")
    return PsdHeader(version, channels, height, width, depth, COLOR_MODES.get(mode, f"unknown({mode})"))


def check_header(header: PsdHeader, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse empty or oversized canvases from the declared size, before anything is decoded."""
    limit = 30000 if header.version == 1 else 300000
    if not (1 <= header.width <= limit and 1 <= header.height <= limit):
        raise Rejected("bad-header", f"invalid canvas size {header.width}x{header.height}")
    if header.pixels > max_pixels:
        raise Rejected(
            "too-large",
            f"canvas {header.width}x{header.height} is larger than the limit of {max_pixels} pixels (--max-pixels)",
        )
