"""Example inputs for the editor, made by the project's own synthetic design generator (`psd_pipeline.synth`).

Written once into a temporary folder: flat PNG designs to decompose and one PSD to edit layer by layer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from layered.fileio import save_png

EXAMPLE_SEED = 7
EXAMPLE_SIZE = 512


def example_files(count: int = 3, size: int = EXAMPLE_SIZE, folder: str | Path | None = None) -> list[str]:
    """Paths of `count` example designs (the last one a PSD), or [] when the generator is not installed."""
    try:
        from psd_pipeline.synth import design_to_psd, make_design
    except ImportError:
        return []
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "layered-examples"
    paths = []
    for k in range(count):
        is_psd = k == count - 1
        path = folder / f"design-{k}-{size}.{'psd' if is_psd else 'png'}"
        if not path.is_file():
            stack = make_design(EXAMPLE_SEED, k, size, style="flat")
            if is_psd:
                design_to_psd(stack, path)
            else:
                save_png(stack.composite(), path)
        paths.append(str(path))
    return paths
