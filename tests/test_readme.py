"""The README's commands stay true: every `layered ...` line parses with the real CLI, every path it names exists.

The commands themselves run in other tests and in the notebooks; this catches a README that drifts from the
CLI (a renamed flag, a removed subcommand, a config file that moved).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from layered.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REPO_PATH = re.compile(r"^(?:examples|training|benchmarks|notebooks|docs|layered|psd_pipeline)/[\w./-]+$")


def readme_commands() -> list[str]:
    """Every `layered ...` command inside the README's bash blocks (after `&&` too), comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip().replace("[", "").replace("]", "")  # usage: options shown as [--x N]
            for part in line.split("&&"):
                words = shlex.split(part.strip(), comments=True)
                if "-m" in words and "layered" in words:  # accelerate launch [...] -m layered ...
                    words = words[words.index("layered") :]
                if words and words[0] == "layered":
                    commands.append(shlex.join(words))
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_every_subcommand():
    used = {shlex.split(c)[1] for c in COMMANDS if len(shlex.split(c)) > 1}
    assert {"decompose", "compose", "eval", "psd", "train", "app"} <= used


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command):
    words = shlex.split(command)[1:]
    if words == ["--help"]:
        return
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"README command does not parse (exit {exc.code}): {command}")
    for word in words:
        if REPO_PATH.match(word) and not word.startswith(("runs/", "out")):
            assert (ROOT / word).exists(), f"README names {word}, which is not in the repository"


def test_first_command_decomposes_a_bundled_example():
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    assert "pip install" in first and "layered decompose examples/" in first
    example = re.search(r"layered decompose (examples/\S+)", first).group(1)
    assert (ROOT / example).is_file()
