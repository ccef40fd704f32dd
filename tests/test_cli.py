"""The `layered` entry point: light imports, one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from helpers import random_stack

HEAVY = ("torch", "diffusers", "transformers", "gradio", "accelerate")


def _heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("HEAVY=")][-1]
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def test_import_and_help_stay_light():
    assert _heavy_modules_after("import layered") == []
    assert _heavy_modules_after("from layered.cli import build_parser\nbuild_parser()") == []


def test_compose_stays_light(tmp_path):
    random_stack(np.random.default_rng(0), count=2).save(tmp_path / "s")
    argv = ["compose", str(tmp_path / "s"), "-o", str(tmp_path / "o.png")]
    code = f"from layered.cli import main\nassert main({argv!r}) == 0"
    assert _heavy_modules_after(code) == []
    assert (tmp_path / "o.png").is_file()


def test_bad_input_is_one_line_and_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "layered", "compose", str(tmp_path / "missing"), "-o", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_version_and_help():
    result = subprocess.run([sys.executable, "-m", "layered", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "compose" in result.stdout
