"""One browser session of the editor: its layer stack with undo/redo, the original image, its export folder.

Nothing here knows about Gradio; the UI keeps one `EditorSession` per browser session in a `gr.State`, so
two users never share a stack. Stacks are immutable values, so history is a list of stacks that share
every layer an edit did not touch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from layered.app.render import LayerPreviews
from layered.errors import InputError
from layered.fileio import open_image, safe_filename, save_png, to_rgba_array
from layered.formats import EXPORT_KINDS, is_stack_file, read_stack, write_stack
from layered.stack import Layer, LayerStack

MAX_HISTORY = 50
COMPOSITE_PNG = "png"  # the editor's one export that is not a layer stack: the composite as a PNG
EXPORT_CHOICES = (*EXPORT_KINDS, COMPOSITE_PNG)


class EditorSession:
    """The state of one editor session; every mutation holds `lock` (events of one session may overlap)."""

    def __init__(self, max_history: int = MAX_HISTORY) -> None:
        self.max_history = max_history
        self.history: list[LayerStack] = []
        self.position = -1
        self.original: np.ndarray | None = None  # the opened image (or the PSD's composite): "before"
        self.name = "image"
        self.selected: int | None = 0  # bottom-first index of the selected layer; None: nothing selected
        self.lock = threading.RLock()
        self.cancel = threading.Event()  # set by the Cancel button, polled by a running decomposition
        self.previews = LayerPreviews()  # the canvas's downscaled layers
        self.sent: set[str] = set()  # ids of the previews this session's browser already holds
        self._export_dir: Path | None = None

    # ---- history

    @property
    def stack(self) -> LayerStack | None:
        return self.history[self.position] if self.history else None

    def require_stack(self) -> LayerStack:
        if self.stack is None:
            raise InputError("open an image, PSD or ORA file first")
        return self.stack

    def start(self, stack: LayerStack, original: np.ndarray, name: str) -> None:
        """Begin a new document: history cleared, `stack` is the only state, `original` the "before" image."""
        with self.lock:
            self.history, self.position = [stack], 0
            self.original = original
            self.name = safe_filename(name, default="image")
            self.selected = len(stack) - 1
            self.sent.clear()

    def push(self, stack: LayerStack, selected: int | None = None) -> LayerStack:
        """Make `stack` current (dropping any redo steps), keep at most `max_history` steps, select a layer."""
        with self.lock:
            del self.history[self.position + 1 :]
            self.history.append(stack)
            del self.history[: max(0, len(self.history) - self.max_history)]
            self.position = len(self.history) - 1
            self.select(self.selected if selected is None else selected)
            return stack

    def deselect(self) -> None:
        with self.lock:
            self.selected = None

    def edit(self, index: int, fn: Callable[[LayerStack, int], LayerStack], select: int | None = None) -> LayerStack:
        """Apply `fn(stack, index)` to the current stack, push the result and select `select` (default: index)."""
        with self.lock:
            stack = self.require_stack()
            index = self.check_index(index)
            return self.push(fn(stack, index), index if select is None else select)

    def undo(self) -> bool:
        with self.lock:
            if self.position <= 0:
                return False
            self.position -= 1
            self.select(self.selected)
            return True

    def redo(self) -> bool:
        with self.lock:
            if self.position >= len(self.history) - 1:
                return False
            self.position += 1
            self.select(self.selected)
            return True

    @property
    def can_undo(self) -> bool:
        return self.position > 0

    @property
    def can_redo(self) -> bool:
        return 0 <= self.position < len(self.history) - 1

    # ---- selection

    def check_index(self, index) -> int:
        """`index` as a bottom-first layer index of the current stack, or InputError saying what is valid."""
        stack = self.require_stack()
        try:
            value = int(index)
        except (TypeError, ValueError):
            raise InputError(f"no layer selected (got {index!r})") from None
        if value != index and not isinstance(index, str):
            raise InputError(f"layer index must be a whole number, got {index!r}")
        if not 0 <= value < len(stack):
            raise InputError(f"layer {value} does not exist (the stack has {len(stack)} layers)")
        return value

    def select(self, index: int | None) -> int | None:
        """Select layer `index`, clamped into the current stack; None clears the selection."""
        if index is None:
            self.selected = None
            return None
        stack = self.stack
        count = len(stack) if stack is not None else 0
        self.selected = min(max(int(index), 0), max(count - 1, 0))
        return self.selected

    # ---- input and output

    def open_file(self, path: str | os.PathLike) -> LayerStack:
        """Open an upload: a layer stack the registry reads (PSD/PSB/ORA/ZIP) as its layers, any other file as
        an image (one layer).

        Bad files raise InputError naming only the file (not the server's upload folder); the session's
        current document is kept.
        """
        path = Path(path)
        stack, original = load_upload(path)
        self.start(stack, original, path.stem)
        return stack

    def export_dir(self) -> Path:
        """A private temporary folder for this session's exports, removed by `close`."""
        if self._export_dir is None or not self._export_dir.is_dir():
            self._export_dir = Path(tempfile.mkdtemp(prefix="layered-editor-"))
        return self._export_dir

    def export(self, kind: str) -> Path:
        """Write the current stack as `kind` (a kind of EXPORT_CHOICES) and return the file."""
        kind = str(kind).lower().lstrip(".")
        if kind not in EXPORT_CHOICES:
            raise InputError(f"unknown export format {kind!r} (choose from {', '.join(EXPORT_CHOICES)})")
        stack = self.require_stack()
        if not stack.layers:
            raise InputError("there are no layers to export")
        folder = Path(tempfile.mkdtemp(dir=self.export_dir()))  # one folder per export: names never clash
        if kind == COMPOSITE_PNG:
            path = folder / f"{self.name}-composite.png"
            save_png(stack.composite(), path)
            return path
        return write_stack(stack, folder / f"{self.name}.{kind}", kind)

    def close(self) -> None:
        """Free what the session holds on disk (called when Gradio drops the session)."""
        if self._export_dir is not None:
            shutil.rmtree(self._export_dir, ignore_errors=True)
            self._export_dir = None


def load_upload(path: Path) -> tuple[LayerStack, np.ndarray]:
    """(stack, original RGBA) of an uploaded file; errors mention the file's name, not the upload folder."""
    try:
        if is_stack_file(path):
            stack = read_stack(path)
            if not stack.layers:
                raise InputError(f"{path}: no layers with pixels in this file")
            original = stack.composite()
        else:
            original = to_rgba_array(open_image(path))
            height, width = original.shape[:2]
            stack = LayerStack(width, height, (Layer.from_canvas(original, safe_filename(path.stem, default="image")),))
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), path.name)) from None
    return stack, original


def load_layer_image(path: Path) -> np.ndarray:
    """RGBA pixels of an image uploaded to replace a layer (size limits apply)."""
    try:
        return to_rgba_array(open_image(path))
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), path.name)) from None
