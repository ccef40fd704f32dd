"""ZIP of a layer folder: the archive holds exactly the folder's files; foreign and hostile archives."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers import random_stack

from layered.errors import InputError
from layered.formats import read_stack, write_stack
from layered.stack import LayerStack


def test_archive_holds_the_layer_folder(tmp_path):
    stack = random_stack(np.random.default_rng(11), canvas=(30, 20), count=3)
    folder = stack.save(tmp_path / "folder")
    with zipfile.ZipFile(write_stack(stack, tmp_path / "out.zip")) as zf:
        assert sorted(zf.namelist()) == sorted(p.name for p in folder.iterdir())
        for name in zf.namelist():
            assert zf.read(name) == (folder / name).read_bytes()


def test_reads_a_folder_zipped_with_its_top_level_directory(tmp_path):
    """What `zip -r stack.zip stack/` makes: every file under one folder."""
    stack = random_stack(np.random.default_rng(12), canvas=(30, 20), count=2)
    folder = stack.save(tmp_path / "mystack")
    path = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mystack/", b"")
        for file in folder.iterdir():
            zf.write(file, f"mystack/{file.name}")
    got = read_stack(path)
    assert got.size == stack.size and [layer.name for layer in got] == [layer.name for layer in stack]
    assert np.array_equal(got.composite(), stack.composite())


def _zip_with(path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("case", ["no layers.json", "escaping file", "escaping member", "truncated png", "not a zip"])
def test_bad_archives_are_input_errors(tmp_path, case):
    stack = LayerStack(4, 4, ())
    good = stack.save(tmp_path / "good")
    spec = json.loads((good / "layers.json").read_text())
    path = tmp_path / "bad.zip"
    if case == "no layers.json":
        _zip_with(path, {"composite.png": (good / "composite.png").read_bytes()})
    elif case == "escaping file":
        spec["layers"] = [{"file": "../x.png", "name": "x"}]
        _zip_with(path, {"layers.json": json.dumps(spec).encode()})
    elif case == "escaping member":
        _zip_with(path, {"layers.json": json.dumps(spec).encode(), "../../evil.txt": b"owned"})
    elif case == "truncated png":
        png = (good / "composite.png").read_bytes()
        spec["layers"] = [{"file": "a.png", "name": "a"}]
        _zip_with(path, {"layers.json": json.dumps(spec).encode(), "a.png": png[: len(png) // 2]})
    else:
        path.write_bytes(b"not a zip at all")
    with pytest.raises(InputError) as info:
        read_stack(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path.parent / "evil.txt").exists()
