"""`layered psd inspect`: the tree, what each rule did, the fidelity and the verdict."""

from __future__ import annotations

import json
import subprocess
import sys

from psd_pipeline.inspect import format_report, inspect_file


def test_clipping_file_explains_every_layer(shared_dir):
    report = inspect_file(shared_dir / "psd-corpus" / "clipping-mask.psd")
    assert report["verdict"] == "accepted" and report["psnr"] >= 40
    assert report["reference"] == "stored"
    actions = [node["action"] for node in report["tree"]]
    assert all(actions)  # every node says what happened to it
    assert any(a.startswith("clipped") for a in actions)
    assert any(a.startswith("group expanded") for a in actions)
    text = format_report(report)
    assert "clipped" in text and "verdict: accepted" in text and "fidelity:" in text


def test_blend_mode_merge_is_reported(shared_dir):
    report = inspect_file(shared_dir / "psd-corpus" / "blend-modes" / "screen.psd")
    assert report["merges"] and "screen" in report["merges"][0]
    assert len(report["layers"]) == 1 and report["verdict"] == "accepted"


def test_rejections_carry_the_reason(shared_dir):
    lab = inspect_file(shared_dir / "psd-corpus" / "colormodes" / "4x4_8bit_lab.psd")
    assert lab["verdict"] == "rejected" and lab["reason"] == "color-mode"
    low = inspect_file(shared_dir / "psd-corpus" / "adjustments" / "brightnesscontrast_legacy_rgb.psd")
    assert low["verdict"] == "rejected" and low["reason"] == "low-psnr" and low["psnr"] < 40
    assert "verdict: rejected: low-psnr" in format_report(low)


def test_cli_inspect(shared_dir, tmp_path):
    run = [sys.executable, "-m", "layered", "psd", "inspect"]
    text = subprocess.run([*run, str(shared_dir / "psd-corpus" / "group.psd")], capture_output=True, text=True)
    assert text.returncode == 0 and "layer tree" in text.stdout
    as_json = subprocess.run(
        [*run, str(shared_dir / "psd-corpus" / "group.psd"), "--json"], capture_output=True, text=True
    )
    assert json.loads(as_json.stdout)["verdict"] == "accepted"
    missing = subprocess.run([*run, str(tmp_path / "nope.psd")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
