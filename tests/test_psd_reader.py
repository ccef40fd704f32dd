"""The editor's PSD reading (issue 24): what you open is what Photoshop shows, every simplification noted.

Every check compares with Photoshop's stored composite (psd-tools `topil()`, colour-managed by
`helpers.colour_managed_composite`), never with our own output; fidelity is the worse PSNR of the image over
black and over white, computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import colour_managed_composite

from layered.formats import read_stack
from layered.formats.psd import read_with_notes

ROOT = Path(__file__).resolve().parents[1]


def over_both(ours: np.ndarray, reference: np.ndarray) -> float:
    """Worse PSNR (dB) of straight RGBA `ours` over black and over white vs `reference` (RGB: over white)."""
    a = ours[..., 3:] / 255.0
    rgb = ours[..., :3] / 255.0
    ref = reference / 255.0
    if ref.shape[2] == 3:
        pairs = [(rgb * a + 1 - a, ref)]
    else:
        r = ref[..., 3:]
        pairs = [(rgb * a + bg * (1 - a), ref[..., :3] * r + bg * (1 - r)) for bg in (0.0, 1.0)]
    mses = [np.mean((x - y) ** 2) for x, y in pairs]
    return min(99.0, 10 * np.log10(1 / max(max(mses), 1e-10)))


def lab_formula(lab: np.ndarray):
    """CIE Lab (D50, PSD byte layout) -> sRGB 8-bit through XYZ and the Bradford-adapted matrix (formulas only)."""
    from PIL import Image

    lightness = lab[..., 0] / 255.0 * 100.0
    a, b = lab[..., 1] - 128.0, lab[..., 2] - 128.0
    fy = (lightness + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * np.array([0.9642, 1.0, 0.8249])
    matrix = np.array(
        [[3.1338561, -1.6168667, -0.4906146], [-0.9787684, 1.9161415, 0.0334540], [0.0719453, -0.2289914, 1.4052427]]
    )
    linear = np.clip(xyz @ matrix.T, 0, 1)
    rgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8), "RGB")


def stored(path: Path) -> np.ndarray:
    from psd_tools import PSDImage

    return colour_managed_composite(PSDImage.open(path))


def opened(shared_dir, name: str):
    path = shared_dir / "psd-corpus" / name
    stack, notes = read_with_notes(path)
    return stack, notes, over_both(stack.composite(), stored(path))


@pytest.mark.parametrize(
    ("name", "layers", "note"),
    [
        ("clipping-mask.psd", 4, "'Shape 1': the layers clipped to it baked in"),  # clipping mask, the rest kept
        ("clipping-mask4.psd", 1, "merged with the 2 layer(s) it changes"),
        ("clipping-mask5.psd", 2, "group 'Group 1' merged into one layer (layers clipped to the group)"),
        ("clip-adjustment.psd", 1, "'a': the layers clipped to it baked in"),
    ],
)
def test_clipping_masks_show_what_photoshop_shows(shared_dir, name, layers, note):
    stack, notes, value = opened(shared_dir, name)
    assert value >= 40.0, (name, value)
    assert sum(layer.visible for layer in stack) == layers
    assert any(note in n for n in notes), notes


@pytest.mark.parametrize(
    ("name", "adjustment"),
    [
        ("adjustments/invert_rgb.psd", "'Invert 1' (invert adjustment)"),
        ("adjustments/curves_rgb.psd", "(curves adjustment)"),
        ("adjustments/adjustment_nested_composition_3.psd", "(curves adjustment)"),
        ("passthrough_fill_adjustment.psd", "(exposure adjustment)"),
    ],
)
def test_adjustment_layers_are_merged_with_what_they_change(shared_dir, name, adjustment):
    """The old reader skipped them (invert_rgb.psd at 8.3 dB, curves_rgb.psd at 13.8 dB)."""
    _stack, notes, value = opened(shared_dir, name)
    assert value >= 40.0, (name, value)
    assert any(adjustment in n and "merged with" in n for n in notes), notes


@pytest.mark.parametrize("mode", ["divide", "multiply", "screen", "color-burn", "hue", "soft-light"])
def test_non_normal_blend_modes_are_merged_exactly(shared_dir, mode):
    _stack, notes, value = opened(shared_dir, f"blend-modes/{mode}.psd")
    assert value >= 40.0, (mode, value)
    assert any(f"({mode.replace('-', '_')} blend) merged with" in n for n in notes), notes


def test_layers_a_blend_does_not_touch_stay_separate(shared_dir):
    """pass-through.psd: a pass-through group of normal shapes is expanded, each shape its own layer."""
    stack, notes, value = opened(shared_dir, "blend-modes/pass-through.psd")
    assert value >= 40.0
    assert [layer.name for layer in stack] == ["Ellipse 1", "Ellipse 2", "Ellipse 3"]
    assert not any("merged" in n for n in notes)


def test_a_group_with_its_own_blend_mode_becomes_one_layer_named_after_it(shared_dir):
    """gray-blend-modes.psd: two groups in normal (isolated) mode, with blended layers inside; blending them
    through (pass-through) would show something else, so each opens as one layer named after the group."""
    stack, notes, value = opened(shared_dir, "blend-modes/gray-blend-modes.psd")
    assert value >= 40.0, value
    names = ["Duck in foreground, rainbow in background", "Rainbow in foreground, duck in background"]
    assert [layer.name for layer in stack] == names
    assert notes == [
        f"group {name!r} merged into one layer (isolated group with a blend mode or adjustment inside)"
        for name in names
    ]


def test_a_group_with_its_own_opacity_becomes_one_layer(shared_dir):
    stack, notes, value = opened(shared_dir, "effects/shape-fx.psd")
    assert value >= 40.0
    assert "Group 1" in [layer.name for layer in stack]
    assert "group 'Group 1' merged into one layer (opacity 115/255)" in notes


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("32bit.psb", "Linear RGB"),
        ("32bit5x5.psd", "Linear RGB"),
        ("16bit5x5.psb", None),
        ("colormodes/4x4_8bit_cmyk.psd", "Japan Color 2001 Coated"),
        ("colorprofiles/north_america_newspaper.psd", None),
        ("adjustments/brightnesscontrast_cmyk.psd", None),
    ],
)
def test_icc_tagged_deep_and_cmyk_documents_are_colour_managed(shared_dir, name, profile):
    from psd_tools import PSDImage

    from layered.psd.color import profile_description

    stack, _notes, value = opened(shared_dir, name)
    assert value >= 40.0, (name, value)
    psd = PSDImage.open(shared_dir / "psd-corpus" / name)
    if profile is not None:
        assert profile in profile_description(psd)
    # the raw stored values (no profile) are not what Photoshop shows: the profile made the difference
    raw = np.asarray(psd.topil(apply_icc=False).convert("RGB"))
    if name.startswith(("32bit", "colormodes/4x4_8bit_cmyk")):
        assert over_both(stack.composite(), raw) < 30.0


def test_untagged_cmyk_uses_one_conversion_in_every_reader(shared_dir, tmp_path):
    """Without a profile the layers, the builder's rows and psd-tools' own stored composite all use Pillow's
    profile-free CMYK formula: their mean colours agree within a level."""
    import io

    from PIL import Image
    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    from psd_pipeline.sample import SampleOptions, process_file

    psd = PSDImage.open(shared_dir / "psd-corpus" / "colormodes" / "4x4_8bit_cmyk.psd")
    del psd.image_resources[Resource.ICC_PROFILE]
    path = tmp_path / "untagged.psd"
    psd.save(path)
    reference = np.asarray(PSDImage.open(path).topil().convert("RGB")).astype(float)
    stack, _notes = read_with_notes(path)
    row = process_file(path, "untagged.psd", SampleOptions())["row"]
    built = Image.new("RGBA", stack.size)
    for data in row["layers"]:
        built = Image.alpha_composite(built, Image.open(io.BytesIO(data)).convert("RGBA"))
    for ours in (stack.composite(), np.asarray(built)):
        assert ours[..., 3].min() == 255
        assert np.abs(ours[..., :3].astype(float).mean((0, 1)) - reference.mean((0, 1))).max() < 1.0


def test_hidden_layers_stay_hidden_and_keep_their_pixels(shared_dir):
    from psd_tools import PSDImage

    path = shared_dir / "psd-corpus" / "hidden-layer.psd"
    stack, _notes, value = opened(shared_dir, "hidden-layer.psd")
    assert value >= 40.0
    psd = PSDImage.open(path)
    assert [(layer.name, layer.visible) for layer in stack] == [(layer.name, layer.visible) for layer in psd]
    hidden = [layer for layer in stack if not layer.visible]
    assert hidden and all(not layer.is_empty for layer in hidden)


def test_what_cannot_be_kept_opens_as_the_stored_composite_and_says_why(shared_dir):
    """layer_comps.psd: psd-tools itself renders its layers at about 23 dB of what Photoshop stored."""
    stack, notes, value = opened(shared_dir, "layer_comps.psd")
    assert value >= 40.0
    assert len(stack) == 1 and stack[0].name == "Composite"
    assert len(notes) == 1 and notes[0].startswith("the layers reproduce the image only to ")
    assert "opened as Photoshop's stored composite, one layer" in notes[0]


@pytest.mark.parametrize("name", ["colormodes/4x4_8bit_lab.psd", "colormodes/4x4_8bit_index_color.psd"])
def test_unconverted_colour_modes_open_as_their_composite(shared_dir, name):
    from psd_tools import PSDImage

    path = shared_dir / "psd-corpus" / name
    stack, notes = read_with_notes(path)
    image = PSDImage.open(path).topil()
    if image.mode == "LAB":  # by the formula: L* 0..100, a* b* offset by 128 as PSD stores them; D50 -> sRGB
        image = lab_formula(np.asarray(image))
    shown = np.asarray(image.convert("RGB"))
    assert len(stack) == 1 and over_both(stack.composite(), shown) >= 40.0
    assert notes and "document: opened as its stored composite" in notes[0]


def test_notes_travel_into_layers_json(shared_dir, tmp_path):
    stack = read_stack(shared_dir / "psd-corpus" / "adjustments" / "invert_rgb.psd")
    stack.save(tmp_path / "folder")
    spec = json.loads((tmp_path / "folder" / "layers.json").read_text(encoding="utf-8"))
    assert spec["notes"] == list(stack.notes) and stack.notes
    assert read_stack(tmp_path / "folder").notes == stack.notes


def test_compose_says_the_notes_on_one_stderr_line(shared_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    source = shared_dir / "psd-corpus" / "blend-modes" / "divide.psd"
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "layered", "compose", str(source), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"layered compose: note: {source}: 'Ellipse 3' (divide blend) merged with the 2 layer(s) it changes"
    ]
    from PIL import Image

    assert over_both(np.asarray(Image.open(out).convert("RGBA")), stored(source)) >= 40.0


def test_eval_says_each_files_notes_on_one_line(shared_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    source = shared_dir / "psd-corpus" / "adjustments" / "invert_rgb.psd"
    proc = subprocess.run(
        [sys.executable, "-m", "layered", "eval", str(source), str(source), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    note = "'Invert 1' (invert adjustment) merged with the 1 layer(s) it changes"
    assert proc.stderr.splitlines() == [f"layered eval: note: {source}: {note}"] * 2
    assert all(row["soft_iou"] == 1.0 for row in json.loads(proc.stdout))
