"""Reading and writing layer stacks: layer folders, PSD/PSB, OpenRaster, ZIP and PPTX.

This module is the one registry of file kinds: every other place (the CLI, the batch loop, the editor's
upload and export) asks it which suffixes are images, which are layer stacks it can read, and which
kinds it can write. Each format lives in its own module and is imported only when used.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from layered.errors import InputError
from layered.stack import LayerStack

# Flat images, read by Pillow (`layered.fileio.open_image`) and decomposed.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# kind -> module in this package with read(path) -> LayerStack and/or write(stack, path).
FORMATS = {"psd": "psd", "psb": "psd", "ora": "ora", "zip": "zip", "pptx": "pptx"}
# Layer stacks we read (a layer folder is read too, by `read_stack`), and the kinds we write.
STACK_SUFFIXES = (".psd", ".psb", ".ora", ".zip")
EXPORT_KINDS = ("psd", "ora", "zip", "pptx")  # .psb is read only: what we write fits in a PSD
# Photoshop documents (PSD, and PSB, its large-document form): what `layered psd build` reads.
PSD_SUFFIXES = tuple(suffix for suffix in STACK_SUFFIXES if FORMATS[suffix[1:]] == "psd")
# What the editor offers to open: an image, or a layer stack to edit.
UPLOAD_SUFFIXES = IMAGE_SUFFIXES + STACK_SUFFIXES


def suffix_kind(path: str | os.PathLike) -> str:
    """The lower-case suffix of `path` without its dot ("" for none): the key of FORMATS."""
    return Path(path).suffix.lower().lstrip(".")


def is_image(path: str | os.PathLike) -> bool:
    """True when `path` names a flat image by its suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_stack_file(path: str | os.PathLike) -> bool:
    """True when `path` names a layer-stack file that `read_stack` reads."""
    return Path(path).suffix.lower() in STACK_SUFFIXES


def _module(kind: str):
    return importlib.import_module(f"layered.formats.{FORMATS[kind]}")


def read_stack(path: str | os.PathLike) -> LayerStack:
    """A layer folder, or a file in one of the readable formats, as a LayerStack."""
    path = Path(path)
    if path.is_dir():
        return LayerStack.load(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not is_stack_file(path):
        raise InputError(f"{path}: cannot read this kind of file (a layer folder or {', '.join(STACK_SUFFIXES)})")
    return _module(suffix_kind(path)).read(path)


def check_export_kinds(kinds: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`kinds` lower-cased, dots dropped, duplicates removed; an unknown one raises InputError naming the choices."""
    cleaned = tuple(dict.fromkeys(k.strip().lower().lstrip(".") for k in kinds if k.strip()))
    unknown = [k for k in cleaned if k not in EXPORT_KINDS]
    if unknown:
        raise InputError(f"unknown export format {', '.join(unknown)} (choose from {', '.join(EXPORT_KINDS)})")
    return cleaned


def write_stack(stack: LayerStack, path: str | os.PathLike, kind: str | None = None) -> Path:
    """Write `stack` as `kind` (default: from the suffix of `path`), atomically."""
    path = Path(path)
    (kind,) = check_export_kinds([kind or suffix_kind(path)])
    _module(kind).write(stack, path)
    return path
