"""The notebooks in notebooks/ run top to bottom (each has its own assert cells) and are stored without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SHARED = NOTEBOOKS_DIR.parents[1] / "shared"
NOTEBOOKS = ["01_decompose_and_edit.ipynb", "02_build_a_dataset.ipynb", "03_train_and_evaluate.ipynb"]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == NOTEBOOKS


def _execute(nbformat, nbclient, name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=540, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name}: a cell failed\n" + re.sub(r"\x1b\[[0-9;]*m", "", str(exc)))  # no terminal colours
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{name}: {errors}"


def _small_corpus(shared: Path, folder: Path, count: int = 8) -> Path:
    """Links to the smallest PSDs of the shared corpus (not copies): notebook 02's real-file cell, kept short."""
    corpus = shared / "psd-corpus"
    files = sorted(corpus.rglob("*.psd"), key=lambda p: (p.stat().st_size, p.name))[:count]
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.timeout(1500)
def test_notebooks_run_in_order_twice_in_one_folder(tmp_path, monkeypatch):
    """As a user runs them: 01, 02, 03 in the README's order, then all three again, all writing under one
    folder. Each keeps to its own sub-folder and replaces only what it wrote (issue 18, defect 10)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")

    out = tmp_path / "out"
    # The kernel and the commands it starts inherit this environment.
    monkeypatch.setenv("LAYERED_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no downloads at run time
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: threads only add overhead (and oversubscribe CI)
    monkeypatch.delenv("LAYERED_RUN_REAL_MODEL", raising=False)
    monkeypatch.delenv("LAYERED_NOTEBOOK_MODEL", raising=False)
    if SHARED.is_dir():
        monkeypatch.setenv("LAYERED_PSD_DIR", str(_small_corpus(SHARED, tmp_path / "corpus")))
    user_file = out / "notes.txt"  # a user's own file beside the notebooks' folders
    out.mkdir()
    user_file.write_text("mine")
    for run in (1, 2):
        for name in NOTEBOOKS:
            _execute(nbformat, nbclient, name)
            assert any((out / Path(name).stem).iterdir()), f"{name} (run {run}) wrote nothing in its own folder"
    assert sorted(p.name for p in out.iterdir()) == sorted([user_file.name, *(Path(n).stem for n in NOTEBOOKS)])
    assert user_file.read_text() == "mine"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean(name):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"{name}: cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{name}: cell {i} has an execution count"
