"""The notebooks in notebooks/ run top to bottom (each has its own assert cells) and are stored without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ["01_decompose_and_edit.ipynb", "02_build_a_dataset.ipynb", "03_train_and_evaluate.ipynb"]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")

    # The kernel and the commands it starts inherit this environment.
    monkeypatch.setenv("LAYERED_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no downloads at run time
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: threads only add overhead (and oversubscribe CI)
    monkeypatch.delenv("LAYERED_RUN_REAL_MODEL", raising=False)
    monkeypatch.delenv("LAYERED_NOTEBOOK_MODEL", raising=False)

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
    assert any((tmp_path / "out").iterdir()), f"{name} wrote nothing under LAYERED_NOTEBOOK_OUT"


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
