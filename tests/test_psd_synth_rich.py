"""Rich synthetic designs (v2): determinism, visibility, variety, the layer-order convention, real PSD files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import pil_composite
from PIL import Image, ImageDraw

from layered.cli import main
from layered.metrics import evaluate, mean_scores
from psd_pipeline import assets
from psd_pipeline.curate import overlaps, visible_area
from psd_pipeline.synth import design_to_psd, make_design, write_designs
from psd_pipeline.synth_rich import BACKGROUNDS, MIN_VISIBLE, canonical_order, draw_rich, rank

KINDS = {"panel", "banner", "button", "shape", "emoji", "icon", "photo", "text"}


def _reordered(stack, order):
    return stack.replace(layers=tuple(stack[i] for i in order))


def test_default_style_is_rich_and_depends_only_on_seed_and_index():
    a, b = make_design(3, 7, 64), draw_rich(3, 7, 64).stack
    np.testing.assert_array_equal(a.composite(), b.composite())
    assert [layer.name for layer in a] == [layer.name for layer in b]
    assert not np.array_equal(a.composite(), make_design(3, 8, 64).composite())
    assert not np.array_equal(a.composite(), make_design(3, 7, 64, style="flat").composite())
    with pytest.raises(ValueError, match="style"):
        make_design(3, 7, 64, style="fancy")


def test_files_do_not_depend_on_workers(tmp_path):
    one = write_designs(tmp_path / "one", 6, seed=4, size=48, workers=1)
    two = write_designs(tmp_path / "two", 6, seed=4, size=48, workers=2)
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_every_element_stays_visible_and_text_never_overlaps_text():
    for k in range(1, 121):
        design = draw_rich(21, k, 64)
        stack = design.stack
        areas = visible_area(stack)
        assert stack[0].name == "Background" and (stack[0].pixels[..., 3] == 255).all()
        for layer, area in zip(stack.layers[1:], areas[1:], strict=True):
            own = float(layer.pixels[..., 3].sum()) / 255.0
            assert area >= MIN_VISIBLE * own - 1e-3, (k, layer.name, area / own)
            assert 0 <= layer.x and 0 <= layer.y and layer.x + layer.width <= 64 and layer.y + layer.height <= 64
        texts = [stack[i] for i, kind in enumerate(design.kinds) if kind == "text"]
        for i, a in enumerate(texts):
            for b in texts[i + 1 :]:
                assert not overlaps(a, b), (k, a.name, b.name)


def test_layers_follow_the_order_convention():
    """Tiers never go down the stack (background, panels, objects, text); within a tier, area never grows."""
    for k in range(1, 81):
        design = draw_rich(5, k, 64)
        keys = [
            (rank(kind), -float(layer.pixels[..., 3].sum()))
            for kind, layer in zip(design.kinds, design.stack, strict=True)
        ]
        assert keys == sorted(keys), k


def test_every_element_and_background_kind_appears_over_500_designs():
    seen, backgrounds = {kind: 0 for kind in KINDS}, {style: 0 for style in BACKGROUNDS}
    multicolour = 0
    for k in range(1, 501):
        design = draw_rich(77, k, 32)
        backgrounds[design.kinds[0].split(":")[1]] += 1
        for kind, layer in zip(design.kinds[1:], design.stack.layers[1:], strict=True):
            seen[kind] += 1
            alpha = layer.pixels[..., 3]
            if kind == "panel":  # semi-transparent inside
                assert np.median(alpha[alpha > 0]) < 255
            if kind in ("emoji", "photo"):
                solid = layer.pixels[alpha > 128][:, :3].astype(int)
                multicolour += int(np.ptp(solid, axis=0).max() > 60) if len(solid) else 0
    assert min(seen.values()) >= 10, seen
    assert min(backgrounds.values()) >= 100, backgrounds
    assert multicolour > 0.8 * (seen["emoji"] + seen["photo"])


def test_text_is_drawn_in_several_real_fonts():
    """Layers named by their text; several families (different glyph shapes of the same word at one size)."""
    renders = set()
    for family, weights in assets.TEXT_FONTS.items():
        face = assets.font(weights[0][1], 24)
        image = Image.new("L", (80, 32), 0)
        ImageDraw.Draw(image).text((2, 2), "Sale", font=face, fill=255)
        renders.add(image.tobytes())
        assert family and face.getbbox("Sale")[2] > 10
    assert len(renders) == len(assets.TEXT_FONTS)
    names = {layer.name for k in range(1, 41) for kind, layer in zip(*_kinds_layers(k), strict=True) if kind == "text"}
    assert any(" " in name for name in names) and len(names) > 15


def _kinds_layers(k):
    design = draw_rich(9, k, 64)
    return design.kinds, design.stack.layers


def test_canonical_order_oracle_reaches_the_ceiling_on_rich_but_not_flat_designs():
    """The order is learnable: the oracle (occlusion, then the convention) gets soft IoU@0 >= 0.95 on rich
    designs. On flat (v1) designs, stacked in random order, the same oracle cannot."""
    rich, flat = [], []
    for k in range(1, 201):
        design = draw_rich(1000, k, 64)
        rich.append(evaluate(_reordered(design.stack, canonical_order(design.stack, design.kinds)), design.stack, 0))
        stack = make_design(1000, k, 64, style="flat")
        kinds = ["background:flat"] + ["shape"] * (len(stack) - 1)
        flat.append(evaluate(_reordered(stack, canonical_order(stack, kinds)), stack, 0))
    assert mean_scores(rich)[0]["soft_iou"] >= 0.95
    assert mean_scores(flat)[0]["soft_iou"] < 0.9


def test_canonical_order_keeps_occlusion_and_breaks_ties_by_the_convention():
    design = draw_rich(2, 3, 64)
    stack = design.stack
    scrambled = list(range(len(stack)))[::-1]
    shuffled = _reordered(stack, scrambled)
    kinds = [design.kinds[i] for i in scrambled]
    order = canonical_order(shuffled, kinds)
    # the scrambled stack's own occlusion is kept: for every overlapping pair, the upper stays upper
    position = {layer: n for n, layer in enumerate(order)}
    for i in range(len(shuffled)):
        for j in range(i + 1, len(shuffled)):
            if overlaps(shuffled[i], shuffled[j]):
                assert position[i] < position[j]
    assert sorted(order) == list(range(len(stack)))


def test_psd_stored_composite_is_the_alpha_over_of_its_layers(tmp_path):
    from psd_tools import PSDImage

    for k in (1, 2, 3):
        stack = make_design(6, k, 96)
        psd = PSDImage.open(design_to_psd(stack, tmp_path / f"d{k}.psd"))
        assert [layer.name for layer in psd] == [layer.name for layer in stack]
        for layer, ours in zip(psd, stack.layers, strict=True):
            assert (layer.left, layer.top) == (ours.x, ours.y)
            np.testing.assert_array_equal(np.asarray(layer.topil().convert("RGBA")), ours.pixels)
        stored = np.asarray(psd.topil().convert("RGB")).astype(int)
        assert np.abs(stored - pil_composite(stack)[..., :3]).max() <= 1


def test_psd_build_accepts_rich_designs_at_40_db(tmp_path):
    from psd_pipeline.build import BuildConfig, build

    write_designs(tmp_path / "src", 12, seed=31, size=64)
    report = build(BuildConfig(tmp_path / "src", tmp_path / "ds", progress=False), log=lambda _message: None)
    assert report["by_outcome"] == {"accepted": 12}
    assert report["psnr_quantiles_accepted"]["p0"] >= 40.0
    assert report["layers_before_histogram"] == report["layers_after_histogram"]  # nothing merged or dropped


def test_missing_font_package_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assets, "FONTS", tmp_path / "no-fonts")
    assert main(["psd", "synth", "-o", str(tmp_path / "out"), "--count", "2", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install" in err and "fonts-noto-color-emoji" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(assets.AssetsMissing, match="apt-get install"):
        make_design(1, 1, 32)
    assert main(["psd", "synth", "-o", str(tmp_path / "flat"), "--count", "1", "--size", "32", "--style", "flat"]) == 0
