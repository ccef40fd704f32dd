"""The editor's examples: shipped files, copied for serving, and the same pixels the generator's script makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from psd_tools import PSDImage

from layered.app.examples import EXAMPLES_DIR, example_files, shipped_examples
from psd_pipeline.editor_examples import EXAMPLE_SIZE, example_names, write_examples


def test_examples_are_shipped_pngs_then_a_psd_and_copied_byte_for_byte(tmp_path):
    paths = example_files(folder=tmp_path / "served")
    assert [Path(p).name for p in paths] == example_names()
    for path, source in zip(paths, shipped_examples(), strict=True):
        assert open(path, "rb").read() == source.read_bytes()
    for path in paths[:-1]:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (EXAMPLE_SIZE, EXAMPLE_SIZE)
    psd = PSDImage.open(paths[-1])
    assert psd.size == (EXAMPLE_SIZE, EXAMPLE_SIZE) and len(list(psd)) >= 2  # layers to edit one by one


def test_a_stale_copy_is_replaced(tmp_path):
    first = example_files(folder=tmp_path)[0]
    with open(first, "wb") as stale:
        stale.write(b"not the example")
    assert open(example_files(folder=tmp_path)[0], "rb").read() == shipped_examples()[0].read_bytes()


def test_the_shipped_files_are_what_the_script_makes(tmp_path):
    """If this fails, the generator changed: run `python -m psd_pipeline.editor_examples` and commit the files."""
    made = write_examples(tmp_path)
    for path in made:
        shipped = EXAMPLES_DIR / path.name
        if path.suffix == ".png":
            with Image.open(path) as ours, Image.open(shipped) as theirs:
                assert np.array_equal(np.asarray(ours), np.asarray(theirs)), path.name
            continue
        ours, theirs = PSDImage.open(path), PSDImage.open(shipped)
        assert [layer.name for layer in ours] == [layer.name for layer in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert a.bbox == b.bbox and np.array_equal(np.asarray(a.topil()), np.asarray(b.topil())), a.name
        assert np.array_equal(np.asarray(ours.topil()), np.asarray(theirs.topil()))  # the stored composites
