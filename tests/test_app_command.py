"""`layered app` / `python app.py`: light to import, bad options and a taken port are one-line errors (exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_cli_help_does_not_import_gradio():
    code = "import sys, layered.cli as c; c.build_parser(); print([m for m in ('gradio', 'torch') if m in sys.modules])"
    out = run("-c", code)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    help_text = run("app.py", "--help")
    assert help_text.returncode == 0 and "--host" in help_text.stdout and "127.0.0.1" in help_text.stdout


def test_bad_port_is_one_line_error():
    out = run("-m", "layered", "app", "--port", "70000")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--port" in out.stderr


def test_taken_port_is_one_line_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = run("app.py", "--port", str(port), "--no-examples")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in out.stderr, out.stderr
