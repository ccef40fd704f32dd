"""Example inputs for the editor: files shipped in `layered/assets/examples` (flat PNG designs, then one PSD).

They are made by `python -m psd_pipeline.editor_examples`; at run time they are only copied, into a temporary
folder from which the web framework may serve them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from layered.fileio import atomic_path

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"


def shipped_examples() -> list[Path]:
    """The shipped example files: the PNGs, then the PSDs, each group by name."""
    return sorted(EXAMPLES_DIR.glob("*.png")) + sorted(EXAMPLES_DIR.glob("*.psd"))


def example_files(folder: str | Path | None = None) -> list[str]:
    """Paths of the examples copied into `folder` (default: a temporary folder), the last one a PSD."""
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "layered-examples"
    paths = []
    for source in shipped_examples():
        target = folder / source.name
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        paths.append(str(target))
    return paths
