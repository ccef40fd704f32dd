"""Reading and writing layer stacks: layer folders, PSD, OpenRaster, ZIP and PPTX.

`read_stack` and `write_stack` pick the format from the path; each format lives in its own module
and is imported only when used.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from layered.errors import InputError
from layered.stack import LayerStack

# suffix -> module in this package with read(path) -> LayerStack and/or write(stack, path)
FORMATS = {"psd": "psd", "ora": "ora", "zip": "zip", "pptx": "pptx"}
EXPORT_KINDS = tuple(FORMATS)


def _module(suffix: str):
    return importlib.import_module(f"layered.formats.{FORMATS[suffix]}")


def read_stack(path: str | os.PathLike) -> LayerStack:
    """A layer folder, or a file in one of the readable formats, as a LayerStack."""
    path = Path(path)
    if path.is_dir():
        return LayerStack.load(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    suffix = path.suffix.lower().lstrip(".")
    module = _module(suffix) if suffix in FORMATS else None
    if module is None or not hasattr(module, "read"):
        readable = ", ".join(f".{k}" for k in FORMATS if hasattr(_module(k), "read"))
        raise InputError(f"{path}: cannot read this kind of file (a layer folder or {readable or 'none'})")
    return module.read(path)


def write_stack(stack: LayerStack, path: str | os.PathLike, kind: str | None = None) -> Path:
    """Write `stack` as `kind` (default: from the suffix of `path`), atomically."""
    path = Path(path)
    kind = (kind or path.suffix.lstrip(".")).lower()
    if kind not in FORMATS:
        raise InputError(f"unknown export format {kind!r} (choose from {', '.join(FORMATS)})")
    _module(kind).write(stack, path)
    return path
