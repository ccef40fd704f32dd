"""The batch loop of `layered decompose`: input discovery, output names, one input at a time.

Light (no torch): the decomposer is a callable built by `layered.decompose` (classic method or model).
File kinds come from `layered.formats`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from layered.commands.notes import say_notes
from layered.decompose import Decomposer
from layered.errors import InputError, LayeredError, one_line
from layered.fileio import atomic_dir, atomic_path, open_image, safe_filename, to_rgba_array
from layered.formats import IMAGE_SUFFIXES, is_image, is_stack_file, read_stack, write_stack
from layered.layer_tools import split_layer
from layered.ownership import check_replaceable
from layered.stack import LAYERS_JSON, LayerStack


def collect_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder gives its images (sorted, not recursive), or itself when it is a layer folder
    or holds no image (then it fails as an input of its own)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not (path / LAYERS_JSON).is_file():
            try:
                images = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
            except OSError:
                images = []
            found.extend(images or [path])
        else:
            found.append(path)  # missing files fail later, one line each, and the batch goes on
    return found


def output_names(inputs: list[Path]) -> list[str]:
    """One safe, unique folder name per input (its stem; "-2", "-3"... when stems repeat)."""
    names, seen = [], set()
    for path in inputs:
        stem = safe_filename(path.stem if path.suffix else path.name, default="image")
        name, k = stem, 1
        while name.lower() in seen:
            k += 1
            name = f"{stem}-{k}"
        seen.add(name.lower())
        names.append(name)
    return names


def load_input(path: Path, recursive: int | None) -> np.ndarray | LayerStack:
    """An image as RGBA pixels; with `recursive`, a layer folder, PSD or ORA is read as a stack to split."""
    if recursive is not None and (path.is_dir() or is_stack_file(path)):
        stack = read_stack(path)
        say_notes(stack, path, "decompose")
        return stack
    if path.is_dir() and (path / LAYERS_JSON).is_file():
        raise InputError(f"{path}: a layer folder is an input only with --recursive")
    if path.is_dir():
        raise InputError(f"{path}: a folder with no images in it ({', '.join(IMAGE_SUFFIXES)})")
    return to_rgba_array(open_image(path))


def decompose_one(
    path: Path,
    name: str,
    out_dir: Path,
    decompose: Decomposer,
    *,
    exports: tuple[str, ...] = (),
    recursive: int | None = None,
    split: Decomposer | None = None,
    overwrite: bool = False,
) -> Path:
    """Decompose one input into `out_dir/name/` (a layer folder) plus `out_dir/name.<kind>` per export.

    What is already there is replaced only when an earlier run wrote it (or with `overwrite`), and the
    outputs appear together: a failure leaves none of them.
    """
    folder = out_dir / name
    files = [(out_dir / f"{name}.{kind}", kind) for kind in exports]
    for target in (folder, *(file for file, _ in files)):
        check_replaceable(target, overwrite, inputs=[path])
    source = load_input(path, recursive)
    stack = source if isinstance(source, LayerStack) else decompose(source)
    if recursive is not None:
        if not -len(stack) <= recursive < len(stack):
            raise InputError(f"{path}: --recursive {recursive} but the stack has {len(stack)} layers")
        stack = split_layer(stack, recursive, split or decompose)
    with contextlib.ExitStack() as outputs:
        for file, kind in files:
            write_stack(stack, outputs.enter_context(atomic_path(file)), kind)
        stack.save(outputs.enter_context(atomic_dir(folder)))
    return folder


def check_output_dir(out_dir: Path) -> None:
    """Refuse, once and before any work, an output location that is not a folder we can write into.
    Nothing is created here: a batch that writes nothing leaves nothing behind."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder (-o names the output folder)")
    existing = out_dir.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{out_dir}: cannot create the output folder ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{out_dir}: cannot write into {existing}")


def run_batch(
    items: list[tuple[Path, str]],
    out_dir: Path,
    decompose: Decomposer,
    *,
    exports: tuple[str, ...] = (),
    recursive: int | None = None,
    split: Decomposer | None = None,
    prog: str = "layered decompose",
    overwrite: bool = False,
) -> int:
    """Decompose every (input, name); a failing input prints one line and the batch goes on. Returns failures."""
    from tqdm.auto import tqdm

    failures = 0
    for path, name in tqdm(items, desc="decompose", unit="image", disable=None, file=sys.stderr):
        try:
            decompose_one(
                path, name, out_dir, decompose, exports=exports, recursive=recursive, split=split, overwrite=overwrite
            )
        except LayeredError as exc:
            failures += 1
            tqdm.write(one_line(f"{prog}: error: {exc}"), file=sys.stderr)
        except Exception as exc:  # a bug on one input must not lose the rest of the batch
            if os.environ.get("LAYERED_DEBUG"):
                raise
            failures += 1
            tqdm.write(one_line(f"{prog}: internal error on {path}: {type(exc).__name__}: {exc}"), file=sys.stderr)
    return failures
