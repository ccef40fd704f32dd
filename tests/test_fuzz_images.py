"""20 kinds of broken image through `layered decompose`: each gives one line on stderr, exit 2, and no output.

All inputs run in one subprocess (as a user's shell would see them: warnings are printed, not captured by
pytest), `main()` once per input with stderr captured per call. Seeded, so every run tries the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

RUNNER = """
import contextlib, io, json, sys
from layered.cli import main
results = []
for path, out in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["decompose", path, "-o", out, "--method", "classic"])
    results.append({"path": path, "code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", idat or zlib.compress(b"")) + _chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def broken_inputs(folder: Path, rng: np.random.Generator) -> dict[str, Path]:
    """One file (or thing) per kind of breakage, named after it."""
    image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    png, jpeg = _encoded(image.convert("RGBA"), "PNG"), _encoded(image, "JPEG")
    kinds: dict[str, bytes | None] = {
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "random.jpg": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "png-signature-only.png": png[:8],
        "png-truncated-in-idat.png": png[: len(png) // 2],
        "png-bad-ihdr-crc.png": png[:29] + bytes([png[29] ^ 0xFF]) + png[30:],
        "png-corrupt-idat.png": _png_header(64, 48, idat=b"\x78\x9c" + rng.bytes(200)),
        "png-zero-width.png": _png_header(0, 48),
        "png-over-our-limit.png": _png_header(9000, 9000),
        "png-bomb-warning-size.png": _png_header(9500, 9500),
        "png-bomb-error-size.png": _png_header(100_000, 100_000),
        "jpeg-truncated.jpg": jpeg[: len(jpeg) // 3],
        "jpeg-soi-then-garbage.jpg": b"\xff\xd8" + rng.bytes(512),
        "gif-truncated.gif": _encoded(image.convert("P"), "GIF")[:40],
        "bmp-huge-header.bmp": b"BM" + struct.pack("<IHHIIiiHH", 0, 0, 0, 54, 40, 60000, 60000, 1, 24) + bytes(24),
        "tiff-truncated.tif": _encoded(image, "TIFF")[:64],
        "webp-truncated.webp": _encoded(image, "WEBP")[:30],
        "name\nwith newline.png": b"\x89PNG garbage",
    }
    paths = {}
    for name, data in kinds.items():
        path = folder / name
        path.write_bytes(data)
        paths[name] = path
    fifo = folder / "pipe.png"  # must not block: never opened
    os.mkfifo(fifo)
    paths["fifo"] = fifo
    dangling = folder / "dangling.png"
    dangling.symlink_to(folder / "does-not-exist.png")
    paths["dangling symlink"] = dangling
    return paths


def test_twenty_kinds_of_broken_image_one_line_exit_2_nothing_written(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    paths = broken_inputs(inputs, np.random.default_rng(18))
    assert len(paths) == 20
    jobs = [(str(path), str(tmp_path / f"out-{i}")) for i, path in enumerate(paths.values())]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(jobs)
    for kind, result, (_, out) in zip(paths, results, jobs, strict=True):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2, (kind, result)
        assert len(lines) == 1 and lines[0].startswith("layered decompose: error: "), (kind, result["stderr"])
        assert "internal error" not in lines[0] and "Traceback" not in result["stderr"], (kind, lines)
        assert not Path(out).exists(), f"{kind}: left {sorted(p.name for p in Path(out).iterdir())}"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "inputs")
    assert leftovers == [], leftovers
