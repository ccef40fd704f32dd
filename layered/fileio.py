"""Safe file handling shared by every writer and reader: atomic writes, sanitised names, image limits."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from layered.errors import InputError

# Largest image we decode (pixels). 8192 x 8192; checked from the header, before decoding.
MAX_PIXELS = 8192 * 8192


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it is renamed onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual permissions
    try:
        yield tmp
        follow_umask(tmp)  # a writer may have replaced the file with its own 0600 temp file (safetensors does)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (old content removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        follow_umask(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def follow_umask(path: str | os.PathLike) -> None:
    """Give a file, or a folder and everything in it, the modes a plain `open()` / `mkdir` would (0644 / 0755).

    Writers that go through their own temporary file (safetensors >= 0.7, tempfile) leave 0600 behind; on a
    shared filesystem the team could not read each other's outputs. Execute bits of files are kept.
    """
    path, mask = Path(path), _umask()
    entries = [path] if not path.is_dir() else [path, *path.rglob("*")]
    for entry in entries:
        if entry.is_symlink():
            continue
        mode = entry.stat().st_mode
        wanted = 0o777 if entry.is_dir() else 0o666 | (mode & 0o111)
        os.chmod(entry, wanted & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_filename(name: str, default: str = "layer", max_len: int = 64) -> str:
    """A file-name stem made from untrusted text (layer names, uploads): no separators, no dots first."""
    name = unicodedata.normalize("NFKC", str(name))
    name = re.sub(r"[^\w\-. ]+", "_", name, flags=re.UNICODE)  # drops / \ NUL and control chars
    name = re.sub(r"[\s_]+", "_", name).strip("._- ")
    return name[:max_len] or default


def resolve_inside(root: str | os.PathLike, relative: str) -> Path:
    """Resolve `relative` under `root`, refusing absolute paths and anything that escapes `root`."""
    root = Path(root).resolve()
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise InputError(f"invalid file name {relative!r} in {root}")
    target = (root / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(root):
        raise InputError(f"file name {relative!r} points outside {root}")
    return target


def open_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image (first frame, EXIF-rotated); bad, truncated or oversized: InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    # Pillow's warnings (its bomb warning comes before our own, lower, limit; "Truncated File Read" before
    # its error) are not for the user: an image decodes, or fails with our one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode(path, max_pixels)


def _decode(path: Path, max_pixels: int) -> Image.Image:
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise InputError(f"{path}: image is {width}x{height}, larger than the limit of {max_pixels} pixels")
            im.load()
            im = ImageOps.exif_transpose(im)  # photos: apply the EXIF rotation
            return im.convert("RGBA") if im.mode == "P" else im.copy()
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def to_rgba_array(image: Image.Image) -> np.ndarray:
    """H x W x 4 uint8 straight-alpha pixels from any PIL image (16-bit, grey, palette, CMYK)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8))
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def save_png(pixels: np.ndarray, path: str | os.PathLike) -> None:
    """Write RGBA pixels as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
