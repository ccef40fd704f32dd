"""Photoshop PSD/PSB as a layer stack, for the editor and the CLI: read what Photoshop shows, write a document.

Reading is the PSD core's editor reading (`layered.psd.reader`): layers stay separate where the composite
stays faithful to Photoshop's stored one, the rest is merged, and as a last resort the document opens as its
stored composite; every simplification is a note in `LayerStack.notes`. Writing is the core's one writer
(`layered.psd.writer`).
"""

from __future__ import annotations

import os
from pathlib import Path

from layered.errors import InputError
from layered.fileio import MAX_PIXELS
from layered.psd.errors import Rejected
from layered.psd.reader import read_document
from layered.psd.writer import write_psd as write  # what the registry calls for .psd
from layered.stack import LayerStack

__all__ = ["read", "read_with_notes", "write"]


def read(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LayerStack:
    """A PSD/PSB as a LayerStack for editing; `stack.notes` lists what had to be simplified."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read_document(path, max_pixels)
    except Rejected as exc:  # the core's reason, said about this file
        raise InputError(f"{path}: {exc.detail}") from None
    except InputError:
        raise
    except Exception as exc:  # psd-tools on a damaged file: any parse error means "bad input"
        raise InputError(f"{path}: cannot read the layers of this PSD ({type(exc).__name__}: {exc})") from None


def read_with_notes(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[LayerStack, list[str]]:
    """A PSD/PSB as a LayerStack, and its notes (one line per simplification) as a list."""
    stack = read(path, max_pixels)
    return stack, list(stack.notes)
