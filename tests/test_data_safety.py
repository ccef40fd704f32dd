"""Nothing a user wrote is replaced: `decompose` (folders, --export files), `psd build -o`, `train --output-dir`.

What an earlier run of ours wrote is replaced on a re-run (layered.ownership says how it is recognised);
anything else is refused with one line naming --overwrite and exit status 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from layered.cli import main
from layered.ownership import is_ours

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXPORTS = "psd,ora,zip,pptx"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def tree(tmp_path):
    """Inputs with a user's files beside them, and an output folder that already holds a user's files."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    (inputs / "psds").mkdir(parents=True)
    for name in ("design_1", "design_2"):
        shutil.copy(EXAMPLES / f"{name}.png", inputs / f"{name}.png")
        shutil.copy(EXAMPLES / f"{name}.psd", inputs / "psds" / f"{name}.psd")
    (inputs / "notes.txt").write_text("my notes\n")
    (inputs / "psds" / "README.txt").write_text("where these came from\n")
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "photo.png").write_bytes((EXAMPLES / "design_3.png").read_bytes())
    (out / "todo.txt").write_text("call the client\n")
    (out / "design_2.psd").write_bytes(b"the user's own design_2.psd")  # the name an export of design_2 takes
    return tmp_path, _files(tmp_path)


def _unchanged(root: Path, before: dict[str, bytes]) -> None:
    after = _files(root)
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert not changed, f"user files changed or removed: {changed}"


def test_user_files_survive_decompose_exports_and_psd_build_run_twice(tree, capsys):
    root, before = tree
    images = [str(root / "inputs" / "design_1.png"), str(root / "inputs" / "design_2.png")]
    args = ["decompose", *images, "-o", str(root / "out"), "--method", "classic", "--export", EXPORTS]
    outputs = {}
    for run in range(2):
        assert main(args) == 2  # design_2.psd is the user's: that input fails, the other goes on
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and "design_2.psd" in err[0] and "--overwrite" in err[0], err
        _unchanged(root, before)
        assert not (root / "out" / "design_2").exists(), "a refused input left part of its output behind"
        written = [root / "out" / "design_1", *(root / "out" / f"design_1.{k}" for k in EXPORTS.split(","))]
        assert all(is_ours(path) for path in written)
        outputs[run] = {name: data for name, data in _files(root / "out").items() if name.startswith("design_1")}
    assert outputs[0].keys() == outputs[1].keys()
    assert outputs[0]["design_1/layers.json"] == outputs[1]["design_1/layers.json"]  # the classic method is exact

    dataset = root / "out" / "dataset"
    for _ in range(2):  # a build over its own earlier build replaces it
        assert main(["psd", "build", str(root / "inputs" / "psds"), "-o", str(dataset), "--no-progress"]) == 0
        manifest = [json.loads(line) for line in (dataset / "manifest.jsonl").read_text().splitlines()]
        assert sorted(r["path"] for r in manifest) == ["design_1.psd", "design_2.psd"]
        _unchanged(root, before)
    capsys.readouterr()
    assert main(["psd", "build", str(root / "inputs" / "psds"), "-o", str(root / "out"), "--no-progress"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--overwrite" in err[0], err
    _unchanged(root, before)


def test_decompose_never_replaces_its_own_input(tmp_path, monkeypatch, capsys):
    """The issue's first case: an input without a suffix, decomposed with -o . would become a folder."""
    monkeypatch.chdir(tmp_path)
    data = (EXAMPLES / "design_1.png").read_bytes()
    (tmp_path / "design").write_bytes(data)
    for extra in ([], ["--overwrite"]):
        assert main(["decompose", "design", "-o", ".", "--method", "classic", *extra]) == 2
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and "input" in err[0], err
        assert (tmp_path / "design").is_file() and (tmp_path / "design").read_bytes() == data


def test_a_user_folder_at_the_output_name_is_refused_then_replaced_with_overwrite(tmp_path, capsys):
    (tmp_path / "out" / "design_1").mkdir(parents=True)
    (tmp_path / "out" / "design_1" / "notes.txt").write_text("mine")
    image = str(EXAMPLES / "design_1.png")
    assert main(["decompose", image, "-o", str(tmp_path / "out"), "--method", "classic"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--overwrite" in err[0], err
    assert (tmp_path / "out" / "design_1" / "notes.txt").read_text() == "mine"
    assert main(["decompose", image, "-o", str(tmp_path / "out"), "--method", "classic", "--overwrite"]) == 0
    assert is_ours(tmp_path / "out" / "design_1")
    assert not (tmp_path / "out" / "design_1" / "notes.txt").exists()


def test_our_outputs_edited_by_the_user_are_no_longer_ours(tmp_path, capsys):
    """A layer PNG retouched by hand, a file added to the folder, a PSD re-saved elsewhere: all refused."""
    out = tmp_path / "out"
    args = ["decompose", str(EXAMPLES / "design_1.png"), "-o", str(out), "--method", "classic", "--export", "psd"]
    assert main(args) == 0
    folder, psd = out / "design_1", out / "design_1.psd"
    layer = sorted(folder.glob("0*.png"))[-1]
    for edit, undo in (
        (lambda: layer.write_bytes(layer.read_bytes() + b"\0"), None),
        (lambda: (folder / "notes.txt").write_text("x"), lambda: (folder / "notes.txt").unlink()),
        (lambda: psd.write_bytes(psd.read_bytes()[:-1] + bytes([psd.read_bytes()[-1] ^ 1])), None),
    ):
        assert main(args) == 0  # our own output: replaced
        edit()
        snapshot = _files(out)
        capsys.readouterr()
        assert main(args) == 2
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and "--overwrite" in err[0], err
        assert _files(out) == snapshot
        if undo is not None:
            undo()
        else:
            assert main([*args, "--overwrite"]) == 0


def test_train_refuses_a_user_folder_as_output_dir(tmp_path, capsys):
    """Checked before anything is trained (and before torch is imported)."""
    data = tmp_path / "data"
    assert main(["psd", "build", str(EXAMPLES), "-o", str(data), "--no-progress"]) == 0
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    config = ROOT / "training" / "configs" / "tiny_vae.yaml"
    capsys.readouterr()
    assert main(["train", "vae", str(config), "--data", str(data), "--output-dir", str(out), "--max-steps", "1"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--overwrite" in err[0], err
    assert _files(out) == {"thesis.tex": b"chapter 1"}


def test_editor_exports_never_land_on_an_existing_file(tmp_path, monkeypatch):
    """The editor writes each export into a fresh private folder of its own: repeated exports of one name
    never replace anything, neither an earlier export nor a file in the system's temporary folder."""
    from layered.app.session import EditorSession
    from layered.formats import read_stack

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    (tmp_path / "image.psd").write_bytes(b"someone else's file")
    session = EditorSession()
    session.start(read_stack(EXAMPLES / "design_1.psd"), np.zeros((4, 4, 4), np.uint8), "image")
    first = session.export("psd")
    data = first.read_bytes()
    second = session.export("psd")
    assert first != second and first.name == second.name == "image.psd"
    assert first.read_bytes() == data and is_ours(first) and is_ours(second)
    assert (tmp_path / "image.psd").read_bytes() == b"someone else's file"
    session.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.psd"]
