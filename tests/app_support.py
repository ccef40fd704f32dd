"""Shared by the editor tests (tests/test_app_*.py): a known flat design, hostile uploads, a served editor and
what the browser tests do with a page (open, upload, wait for the status, export)."""

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


TIMEOUT_MS = 30_000
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def open_editor(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#upload")
    return context, page


def wait_status(page, text: str) -> str:
    page.wait_for_function(
        "text => (document.querySelector('#status')?.innerText || '').includes(text)", arg=text, timeout=TIMEOUT_MS
    )
    return page.inner_text("#status")


def upload(page, path: Path) -> None:
    field = page.locator("#upload input[type=file]")
    if field.count() == 0:  # a file is shown: clear it first (the document is kept)
        page.locator("#upload button[aria-label='Clear']").click()
        field.wait_for(state="attached")
    field.set_input_files(str(path))


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def export_psd(page, folder: Path):
    """Export the document as PSD through the page and open the download with psd-tools."""
    from psd_tools import PSDImage

    page.locator("#export-kind label", has_text="psd").click()
    page.click("#export")
    wait_status(page, "Exported")
    link = page.locator("#export-file a").first
    with page.expect_download() as info:
        link.click()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "exported.psd"
    info.value.save_as(str(path))
    return PSDImage.open(path)


def panel_rows(page) -> int:
    """How many rows the canvas's layer panel shows."""
    return page.locator("#layer-panel .le-row").count()


def select_row(page, index: int) -> None:
    """Click layer `index`'s row in the layer panel and wait for the side panel's dropdown to show it."""
    page.locator(f"#layer-panel .le-row[data-layer-index='{index}'] .le-meta").click()
    page.wait_for_function(
        "prefix => (document.querySelector('#layer input')?.value || '').startsWith(prefix)",
        arg=f"{index}:",
        timeout=TIMEOUT_MS,
    )
