"""File structure: read and check a PSD/PSB header before psd-tools allocates anything, then parse under a budget."""

from __future__ import annotations

import dataclasses
import os
import struct
import warnings
from collections.abc import Collection

from layered.fileio import MAX_PIXELS
from layered.psd.errors import Rejected, short

SIGNATURE = b"8BPS"
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
PSD_MAX_SIDE, PSB_MAX_SIDE = 30000, 300000  # pixels per side in a PSD (version 1) and a PSB (version 2)


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
    if signature != SIGNATURE:
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
    limit = PSD_MAX_SIDE if header.version == 1 else PSB_MAX_SIDE
    if not (1 <= header.width <= limit and 1 <= header.height <= limit):
        raise Rejected("bad-header", f"invalid canvas size {header.width}x{header.height}")
    if header.pixels > max_pixels:
        raise Rejected(
            "too-large", f"canvas {header.width}x{header.height} is larger than the limit of {max_pixels} pixels"
        )


def open_psd(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, *, modes: Collection[str] | None = None):
    """Check the header (and the colour mode, when `modes` lists those accepted), then open with psd-tools
    under an allocation budget; (PSDImage, header). Every refusal is Rejected with its reason."""
    from psd_tools import PSDImage

    header = read_header(path)
    check_header(header, max_pixels)
    if modes is not None and header.color_mode not in modes:
        raise Rejected("color-mode", f"{header.color_mode} documents are not converted to RGBA")
    budget = max(256 << 20, max_pixels * 4 * 16)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            psd = PSDImage.open(path, max_alloc_bytes=budget)
    except Exception as exc:  # truncated or corrupt: struct/value/EOF errors from the parser
        raise Rejected("unreadable", f"psd-tools cannot parse it ({type(exc).__name__}: {short(exc)})") from None
    return psd, header
