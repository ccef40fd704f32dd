"""Shared by the editor tests (tests/test_app_*.py): a known flat design, hostile uploads, a served editor."""

from __future__ import annotations

import socket
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# name -> (fill colour, box) of the three shapes of `design()`, bottom to top; background white
SHAPES = {
    "red": ((220, 40, 40), (20, 30, 110, 100)),
    "blue": ((40, 70, 220), (90, 60, 170, 140)),
    "green": ((30, 160, 60), (40, 120, 100, 170)),
}
SIZE = (192, 192)


def design() -> np.ndarray:
    """A flat design: white background, a red rectangle, a blue ellipse over it, a green rectangle."""
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for name, (colour, box) in SHAPES.items():
        (draw.ellipse if name == "blue" else draw.rectangle)(box, fill=colour)
    return np.array(image.convert("RGBA"))


def write_design(folder: Path, name: str = "design.png") -> Path:
    path = folder / name
    Image.fromarray(design()).save(path)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bad_uploads(folder: Path) -> dict[str, Path]:
    """Files that must be refused: text named .png, a truncated PNG, a PNG declaring 9000 x 9000 pixels
    (over MAX_PIXELS), a PSD with a valid signature and garbage after it."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["not_image"] = folder / "notes.png"
    files["not_image"].write_text("this is not an image\n")
    whole = folder / "whole.png"
    Image.fromarray(design()).save(whole)
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    header = struct.pack(">IIBBBBB", 9000, 9000, 8, 6, 0, 0, 0)
    huge = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    files["huge"] = folder / "huge.png"
    files["huge"].write_bytes(huge + _png_chunk(b"IEND", b""))
    files["broken_psd"] = folder / "broken.psd"
    files["broken_psd"].write_bytes(b"8BPS\x00\x01" + bytes(range(256)) * 4)
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(model: str = "demo", examples: list[str] | None = None):
    """The editor served on a free 127.0.0.1 port in this process: (demo, url). Close with demo.close()."""
    from layered.app.ui import launch

    port = free_port()
    demo = launch(host="127.0.0.1", port=port, model=model, examples=examples, block=False)
    return demo, f"http://127.0.0.1:{port}/"
