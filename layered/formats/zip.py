"""ZIP of a layer folder (layers.json + one PNG per layer + composite.png), and safe zip extraction.

Reading extracts into a temporary folder and loads it with `LayerStack.load`, so the layer-folder
rules (paths inside the folder, image size limits) apply unchanged. Extraction is zip-slip safe and
bounded: member names are resolved inside the target, sizes are capped while they are written.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from layered.errors import InputError
from layered.fileio import resolve_inside
from layered.ownership import SIGNATURE_PLACEHOLDER, signed_path
from layered.stack import LAYERS_JSON, LayerStack

MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 512 * 1024**2  # one uncompressed member
MAX_TOTAL_BYTES = 2 * 1024**3  # all uncompressed members together
_CHUNK = 1024**2


def write(stack: LayerStack, path: str | os.PathLike) -> Path:
    """Write the layer folder of `stack` as a ZIP (files at the archive root), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        folder = stack.save(Path(tmp) / "stack")
        with signed_path(path) as out, zipfile.ZipFile(out, "w") as zf:
            zf.comment = SIGNATURE_PLACEHOLDER.encode()  # how a later run knows the file is ours (layered.ownership)
            zf.write(folder / LAYERS_JSON, LAYERS_JSON, compress_type=zipfile.ZIP_DEFLATED)
            for file in sorted(folder.iterdir()):
                if file.name != LAYERS_JSON:  # PNGs are compressed already: store them
                    zf.write(file, file.name, compress_type=zipfile.ZIP_STORED)
    return path


def read(path: str | os.PathLike) -> LayerStack:
    """A layer folder zipped at the archive root, or inside one top-level folder."""
    path = Path(path)
    with open_zip(path) as zf, tempfile.TemporaryDirectory(prefix="layered-zip-") as tmp:
        names = [info.filename for info in zf.infolist() if not info.is_dir()]
        specs = [n for n in names if n == LAYERS_JSON or (n.count("/") == 1 and n.endswith("/" + LAYERS_JSON))]
        if len(specs) != 1:
            raise InputError(f"{path}: no {LAYERS_JSON} at the top of the archive (not a zipped layer folder)")
        prefix = specs[0][: -len(LAYERS_JSON)]
        extract(zf, tmp, [n for n in names if n.startswith(prefix)], source=path)
        return LayerStack.load(Path(tmp) / prefix if prefix else Path(tmp))


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a ZIP for reading; a missing or non-ZIP file is an InputError."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable ZIP archive ({exc})") from None
    if len(zf.infolist()) > MAX_MEMBERS:
        zf.close()
        raise InputError(f"{path}: more than {MAX_MEMBERS} files in the archive")
    return zf


def extract(zf: zipfile.ZipFile, dest: str | os.PathLike, names: Iterable[str], source: Path | str = "") -> None:
    """Extract `names` from `zf` under `dest`; names escaping `dest` and oversized members are refused."""
    total = 0
    for name in names:
        target = resolve_inside(dest, name)
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise InputError(f"{source}: {name!r} is not in the archive") from None
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(f"{source}: {name!r} is {info.file_size} bytes uncompressed, over the limit")
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
                        raise InputError(f"{source}: archive content is larger than the limit")
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise InputError(f"{source}: cannot extract {name!r} ({exc})") from None
