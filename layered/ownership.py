"""Our own outputs: how a run recognises what an earlier run of layered wrote, so it replaces that and nothing else.

A file we write carries a signature, the text `layered-sha256:` followed by the SHA-256 of the file's bytes
with those 64 hex digits read as zeros (in a PSD's XMP packet, an ORA/ZIP/PPTX archive comment, a field of
layers.json, a PNG's `Software` text chunk, whose checksum is then taken as that of the zeros). A file is
ours only while the signature matches: one edited or re-saved by another program is not. A layer folder is
ours when its layers.json is, and the folder holds exactly the files listed there with their digests. A
dataset or training folder is ours when it holds the marker the command wrote into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from layered.errors import InputError
from layered.fileio import atomic_path

GENERATOR = "layered"
SIGNATURE_PREFIX = "layered-sha256:"
_ZEROS = "0" * 64
SIGNATURE_PLACEHOLDER = SIGNATURE_PREFIX + _ZEROS  # what a writer embeds; `sign` fills in the digest
_MAX_SIGNED_BYTES = 4 << 30  # larger files are never taken for ours (nor read whole to check)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sign(path: str | os.PathLike) -> None:
    """Replace the signature placeholder inside the file at `path` by the file's digest (same length, in place)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    at = data.find(SIGNATURE_PLACEHOLDER.encode())
    if at < 0:
        raise ValueError(f"{path}: no signature placeholder to fill in")
    start = at + len(SIGNATURE_PREFIX)
    data[start : start + 64] = hashlib.sha256(data).hexdigest().encode()
    _fix_png_crc(data, at)
    with open(path, "r+b") as f:
        f.write(data)


def _fix_png_crc(data: bytearray, at: int) -> None:
    """In a PNG, the checksum of the text chunk holding the signature at `at` must follow its text."""
    if not data.startswith(_PNG_MAGIC):
        return
    kind = data.rfind(b"tEXt", 0, at)
    if kind < 4:
        return
    end = kind + 4 + int.from_bytes(data[kind - 4 : kind], "big")
    data[end : end + 4] = zlib.crc32(data[kind:end]).to_bytes(4, "big")


def save_signed_png(pixels, path: str | os.PathLike) -> None:
    """Write RGBA pixels as a PNG that carries our signature (a `Software` text chunk), atomically."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SIGNATURE_PLACEHOLDER)
    with signed_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG", pnginfo=info)


@contextlib.contextmanager
def signed_path(path: str | os.PathLike) -> Iterator[Path]:
    """`atomic_path` for a file that embeds `SIGNATURE_PLACEHOLDER`: it is signed, then renamed onto `path`."""
    with atomic_path(path) as tmp:
        yield tmp
        sign(tmp)


def is_signed(path: str | os.PathLike) -> bool:
    """True when `path` is a regular file whose embedded signature matches its content."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_SIGNED_BYTES:
            return False
        data = bytearray(path.read_bytes())
    except OSError:
        return False
    at = data.find(SIGNATURE_PREFIX.encode())
    if at < 0:
        return False
    start = at + len(SIGNATURE_PREFIX)
    stored = bytes(data[start : start + 64])
    data[start : start + 64] = _ZEROS.encode()
    _fix_png_crc(data, at)
    return stored == hashlib.sha256(data).hexdigest().encode()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_our_layer_folder(folder: str | os.PathLike, spec_name: str = "layers.json") -> bool:
    """True when `folder` is a layer folder we wrote and nothing in it has changed or been added since."""
    folder = Path(folder)
    spec = folder / spec_name
    if folder.is_symlink() or not folder.is_dir() or not is_signed(spec):
        return False
    try:
        doc = json.loads(spec.read_text(encoding="utf-8"))
        files = dict(doc["files"]) if doc.get("generator") == GENERATOR else None
        present = {p.name: p for p in folder.iterdir()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return False
    if files is None or set(present) != {spec_name, *files}:
        return False
    for name, digest in files.items():
        entry = present[name]
        if entry.is_symlink() or not entry.is_file() or file_digest(entry) != digest:
            return False
    return True


def is_ours(path: str | os.PathLike) -> bool:
    """True when `path` is a file or layer folder that a run of layered wrote, unchanged since."""
    path = Path(path)
    return is_our_layer_folder(path) if path.is_dir() and not path.is_symlink() else is_signed(path)


def check_replaceable(target: str | os.PathLike, overwrite: bool = False, inputs: Iterable[Path] = ()) -> None:
    """Refuse to replace `target` unless it does not exist, is ours, or `overwrite` is set; never replace an input.

    An input is protected even with `overwrite` (unless the target is ours), as is a target that holds an input.
    """
    target = Path(target)
    if not os.path.lexists(target) or is_ours(target):
        return
    resolved = target.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == resolved or source.is_relative_to(resolved):
            raise InputError(f"{target}: the output would replace the input {source}; choose another output folder")
    if not overwrite:
        raise InputError(f"{target}: exists and was not written by layered (use --overwrite to replace it)")


def check_output_folder(folder: str | os.PathLike, marker: str, overwrite: bool = False) -> bool:
    """For a command that writes its own files into `folder`: True when it is ours (holds `marker`).

    A missing or empty folder is fine (False); a non-empty one without the marker is refused unless `overwrite`.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return False
    if not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if (folder / marker).is_file():
        return True
    try:
        empty = not any(folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot read the folder ({exc.strerror})") from None
    if not empty and not overwrite:
        raise InputError(f"{folder}: not empty and not written by layered (use --overwrite to write into it)")
    return False


def mark_output_folder(folder: str | os.PathLike, marker: str, command: str) -> None:
    """Create `folder` and put the marker in it that `check_output_folder` looks for."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / marker
    if path.is_file():
        return
    try:  # exclusive create: several processes of one accelerate run may get here together
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps({"generator": GENERATOR, "command": command}) + "\n")
