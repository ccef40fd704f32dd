"""The project's docs stand alone: every Markdown file a tracked file names is one the repository holds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_NAME = re.compile(r"[\w./-]*\w\.md\b")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".ipynb", ".cfg", ".txt", ""}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    paths = [ROOT / line for line in out.splitlines()]
    return [p for p in paths if p.suffix in TEXT_SUFFIXES and p.is_file() and p.stat().st_size < 2_000_000]


def test_every_markdown_file_named_exists():
    files = tracked_text_files()
    held = {p.relative_to(ROOT).as_posix() for p in files if p.suffix == ".md"}
    names = held | {Path(p).name for p in held}
    missing = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for line_number, line in enumerate(text.splitlines(), 1):
            for name in MARKDOWN_NAME.findall(line):
                if "../shared/" in line or name.lstrip("./") in names:
                    continue
                missing.append(f"{path.relative_to(ROOT)}:{line_number}: {name}")
    assert not missing, "names a Markdown file the repository does not have: " + "; ".join(missing)


def test_the_check_sees_a_missing_file():
    line = "see NOTES" + ".md and training/DEMO_PLAN.md."  # split, so that this file names no missing one
    assert MARKDOWN_NAME.findall(line) == ["NOTES" + ".md", "training/DEMO_PLAN.md"]
