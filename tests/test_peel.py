"""The peel loop's contract (layered.peel), on tiny networks built here and on maps made by hand.

Independent references: the compositing formula C = a F + (1 - a) B for what lies beneath, connected regions
drawn by hand for the element split, psd-tools for the layer names in the PSD.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from layered.decompose import Settings, decomposer
from layered.errors import InputError
from layered.peel import (
    Element,
    composite_canvases,
    decompose_peel,
    fill_beneath,
    firm,
    fit_count,
    load_peel,
    predict,
    split_elements,
    stack_order,
    working_size,
)
from layered.peel_model import OUTPUTS, PeelNet
from psd_pipeline.synth_rich import draw_rich


def _network(folder, alpha_bias: float | None = None, seed: int = 0):
    """A tiny random PeelNet saved to `folder`; `alpha_bias` forces the top alpha to nothing (-) or all (+)."""
    torch.manual_seed(seed)
    model = PeelNet(channels=(4, 8, 8, 8), head_channels=4, sample_size=64)
    if alpha_bias is not None:
        with torch.no_grad():
            model.head[-1].weight[0].zero_()
            model.head[-1].bias[0] = alpha_bias
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def design():
    return draw_rich(1000, 3, 96).stack.composite()


def test_network_maps_have_the_documented_channels():
    model = PeelNet(channels=(4, 8, 8, 8), head_channels=4)
    out = model(torch.zeros(2, 4, 48, 32))
    assert out.shape == (2, len(OUTPUTS), 48, 32)


def test_maps_are_the_mean_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = PeelNet(channels=(4, 8, 8, 8), head_channels=4).eval()
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    removed = np.zeros((32, 48), np.float32)
    removed[4:12, 30:40] = 1.0
    x = np.concatenate([rgb.transpose(2, 0, 1) / 127.5 - 1.0, removed[None]]).astype(np.float32)
    with torch.no_grad():
        plain = torch.sigmoid(model(torch.from_numpy(x[None]))[0, 0]).numpy()
        mirror = torch.sigmoid(model(torch.from_numpy(x[None, ..., ::-1].copy()))[0, 0]).numpy()[..., ::-1]
    maps = predict(model, rgb, removed)
    np.testing.assert_allclose(maps["alpha"], (plain + mirror) / 2, atol=1e-5)
    mirrored = predict(model, np.ascontiguousarray(rgb[:, ::-1]), np.ascontiguousarray(removed[:, ::-1]))
    for name in ("alpha", "kind", "text_box", "touch"):  # so what the image shows left or right is treated alike
        np.testing.assert_allclose(mirrored[name][..., ::-1], maps[name], atol=1e-5)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("bias", [None, -20.0, 20.0])
def test_exactly_n_layers_when_asked(tmp_path, design, count, bias):
    folder = _network(tmp_path / "net", bias)
    stack = decomposer(Settings(method="peel", model=str(folder), layers=count))(design)
    assert len(stack) == count
    assert stack[0].kind == "background"


def test_auto_stops_when_the_top_comes_back_empty(tmp_path, design):
    stack = decompose_peel(design, load_peel(_network(tmp_path / "empty", -20.0)), "auto")
    assert len(stack) == 1 and stack[0].name == "Background"


def test_auto_never_passes_the_layer_limit(tmp_path, design):
    stack = decompose_peel(design, load_peel(_network(tmp_path / "all", 20.0)), "auto")
    assert 1 < len(stack) <= 20


def test_refined_layers_recompose_the_input(tmp_path, design):
    stack = decomposer(Settings(method="peel", model=str(_network(tmp_path / "net")), layers=4))(design)
    assert stack.size == (design.shape[1], design.shape[0])
    assert np.abs(stack.composite().astype(int) - design.astype(int)).max() <= 1


def test_no_refine_gives_the_raw_layers_at_the_input_size(tmp_path, design):
    settings = Settings(method="peel", model=str(_network(tmp_path / "net")), layers=3, refine=False)
    stack = decomposer(settings)(design)
    assert stack.size == (96, 96) and stack.refined is False and stack.working_size == (64, 64)


def test_kinds_reach_layers_json_and_the_psd(tmp_path, design):
    from psd_tools import PSDImage

    from layered.formats import write_stack

    stack = decomposer(Settings(method="peel", model=str(_network(tmp_path / "net", 20.0)), layers=4))(design)
    kinds = [layer.kind for layer in stack]
    assert kinds[0] == "background" and all(k in ("panel", "object", "text") for k in kinds[1:])
    stack.save(tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "layers.json").read_text())
    assert [entry["kind"] for entry in doc["layers"]] == kinds
    write_stack(stack, tmp_path / "out.psd")
    names = [layer.name for layer in PSDImage.open(tmp_path / "out.psd")]
    assert names == [layer.name for layer in stack]
    assert names[0] == "Background" and all(n.split()[0] in ("Panel", "Object", "Text") for n in names[1:])


def test_a_missing_or_broken_network_folder_is_one_error_naming_it(tmp_path):
    with pytest.raises(InputError, match="no peel network"):
        load_peel(tmp_path / "nothing")
    broken = _network(tmp_path / "broken")
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match=str(broken)):
        load_peel(broken)


def test_working_size_keeps_the_aspect_on_multiples_of_16():
    assert working_size(256, 256, 128) == (128, 128)
    assert working_size(1664, 928, 128) == (128, 64)
    assert working_size(10, 4000, 128) == (16, 128)


def test_fill_beneath_recovers_an_opaque_elements_background():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:] = (30, 120, 200)
    alpha = np.zeros((40, 40), np.float32)
    alpha[10:25, 12:30] = 1.0
    rgb[alpha > 0] = (250, 20, 20)
    beneath, (colour,) = fill_beneath(rgb, [alpha])
    assert np.abs(beneath.astype(int) - (30, 120, 200)).max() <= 4  # Telea's weights round a little
    assert np.abs(colour[alpha > 0].astype(int) - (250, 20, 20)).max() <= 2


def test_fill_beneath_unblends_a_see_through_panel():
    """C = a F + (1 - a) B with a textured B: B comes back under the panel, and F is the panel's colour."""
    yy, xx = np.mgrid[0:48, 0:48]
    below = np.dstack([xx * 5, yy * 5, np.full_like(xx, 90)]).astype(np.float32)
    alpha = np.zeros((48, 48), np.float32)
    alpha[8:40, 6:42] = 0.6
    panel = np.array([240.0, 240.0, 240.0])
    image = alpha[..., None] * panel + (1 - alpha[..., None]) * below
    beneath, (colour,) = fill_beneath(np.round(image).astype(np.uint8), [alpha])
    inside = alpha > 0
    assert np.abs(beneath[inside].astype(float) - below[inside]).mean() < 2.0
    assert np.abs(colour[inside].astype(float) - panel).max() <= 2


def _maps(alpha, kind=None, text_box=None, touch=None):
    h, w = alpha.shape
    kinds = np.zeros((4, h, w), np.float32)
    kinds[2] = 1.0  # object everywhere unless told
    if kind is not None:
        kinds[:] = 0.0
        for k in range(4):
            kinds[k][kind == k] = 1.0
    zero = np.zeros((h, w), np.float32)
    return {
        "alpha": alpha,
        "kind": kinds,
        "text_box": zero if text_box is None else text_box,
        "touch": zero if touch is None else touch,
    }


def test_split_separates_regions_and_cuts_where_they_touch():
    alpha = np.zeros((30, 40), np.float32)
    alpha[2:10, 2:10] = 1.0  # one object
    alpha[15:25, 5:35] = 1.0  # two objects side by side, touching at column 20
    touch = np.zeros_like(alpha)
    touch[15:25, 19:21] = 1.0
    parts = split_elements(_maps(alpha, touch=touch))
    assert len(parts) == 3
    assert sorted(int((a > 0.5).sum()) for a, _ in parts) == sorted([64, 150, 150])
    assert np.allclose(sum(a for a, _ in parts), alpha)  # every top pixel is in exactly one element


def test_a_part_without_a_confident_body_is_no_element():
    alpha = np.zeros((30, 60), np.float32)
    alpha[2:12, 2:12] = 1.0  # an element: 100 confident pixels
    alpha[15:25, 2:12] = 0.6  # a faint leftover of an earlier round: solid, but nowhere confident
    alpha[15:17, 20:40] = 1.0  # a thin confident rim: 40 pixels, fewer than an element's body
    parts = split_elements(_maps(alpha))
    assert len(parts) == 1 and int((parts[0][0] > 0.5).sum()) == 100


def test_faint_pixels_far_from_every_element_join_none():
    alpha = np.zeros((30, 60), np.float32)
    alpha[2:12, 2:12] = 1.0
    alpha[12:14, 2:12] = 0.3  # the element's soft edge
    alpha[2:28, 40:42] = 0.3  # a faint line far from it (the outline of something beneath)
    (part,) = split_elements(_maps(alpha))
    assert part[0][12:14, 2:12].min() == pytest.approx(0.3) and part[0][:, 40:42].max() == 0


def test_split_keeps_a_line_of_words_together():
    alpha = np.zeros((20, 60), np.float32)
    kind = np.zeros((20, 60), np.int64)
    for x in (5, 20, 35):  # three words, apart from each other
        alpha[5:12, x : x + 10] = 1.0
    kind[alpha > 0] = 3
    box = np.zeros_like(alpha)
    box[4:13, 4:46] = 1.0
    parts = split_elements(_maps(alpha, kind=kind, text_box=box))
    assert len(parts) == 1 and parts[0][1] == "text"


def test_objects_and_text_are_firmed_panels_keep_their_alpha():
    alpha = np.array([[0.0, 0.05, 0.1, 0.35, 0.6, 0.9]], np.float32)
    expected = np.array([[0.0, 0.0, 0.0, 0.5, 1.0, 1.0]], np.float32)  # linear from 0.1 (none) to 0.6 (all)
    for kind in ("object", "text"):
        assert np.allclose(firm(alpha, kind), expected)
    assert np.array_equal(firm(alpha, "panel"), alpha)


def test_a_missing_layer_is_split_off_the_background_by_colour():
    background = np.zeros((40, 40, 4), np.uint8)
    background[..., 3] = 255
    background[:, :20, :3] = (200, 40, 40)  # two flat colours: the classic split's two plates
    background[:, 20:, :3] = (40, 40, 200)
    element = np.zeros((40, 40, 4), np.uint8)
    element[2:6, 2:6] = element[30:34, 30:34] = 255  # two parts, kept together
    canvases, kinds = fit_count([background, element], ["background", "object"], 3)
    assert kinds == ["background", "panel", "object"]
    assert np.array_equal(canvases[2], element)
    assert np.array_equal(composite_canvases(canvases[:2]), background)  # the plates add up to the background
    assert {int(a) for a in np.unique(canvases[1][..., 3])} == {0, 255}


def test_a_count_the_peeling_falls_short_of_looks_again_with_lower_bars(monkeypatch):
    from types import SimpleNamespace

    import layered.peel as peel_module

    image = np.full((48, 48, 3), 230, np.uint8)
    image[2:12, 2:12] = (200, 30, 30)  # a clear element
    image[25:31, 25:31] = (30, 30, 200)  # an element the network is unsure of: 36 pixels at alpha 0.6
    clear, unsure = np.zeros((48, 48), np.float32), np.zeros((48, 48), np.float32)
    clear[2:12, 2:12] = 1.0
    unsure[25:31, 25:31] = 0.6

    def fake_predict(_model, _rgb, removed):  # each element's alpha until a round has removed it
        left = removed < 0.5
        return _maps(np.where(left, np.maximum(clear, unsure), 0.0).astype(np.float32))

    monkeypatch.setattr(peel_module, "predict", fake_predict)
    model = SimpleNamespace(config=SimpleNamespace(sample_size=48))
    assert peel_module.LOW_BARS.confident < 0.6 < peel_module.BARS.confident  # what the case is built on
    for layers in ("auto", 2):  # not short: the default bars; the unsure element stays in the background
        stack = decompose_peel(image, model, layers)
        assert len(stack) == 2 and stack.render_layer(1)[2:12, 2:12, 3].min() == 255
    stack = decompose_peel(image, model, 3)
    assert [layer.kind for layer in stack.layers] == ["background", "object", "object"]  # not a plate split off
    alphas = [stack.render_layer(i)[..., 3] for i in (1, 2)]
    assert sorted(int((a > 127).sum()) for a in alphas) == [36, 100]  # both elements, each a layer of its own


def _element(box, kind, round_index, size=(40, 40)):
    rgba = np.zeros((*size, 4), np.uint8)
    y0, y1, x0, x1 = box
    rgba[y0:y1, x0:x1] = 200
    return Element(rgba, kind, round_index)


def test_overlapping_elements_stack_as_they_came_off_the_rest_by_convention():
    text = _element((2, 6, 2, 12), "text", 0)
    under_text = _element((0, 10, 0, 10), "object", 1)  # overlaps the text, came off after it: lower
    panel = _element((20, 38, 20, 38), "panel", 0)  # overlaps nothing: panels lowest by the convention
    small = _element((12, 15, 30, 33), "object", 0)  # overlaps nothing, smaller than the other object: higher
    over_object = _element((30, 34, 2, 6), "panel", 0)  # a panel above an object that came off after it
    object_below = _element((28, 36, 0, 8), "object", 1)
    order = stack_order([text, under_text, panel, small, over_object, object_below])
    position = {id(e): i for i, e in enumerate(order)}
    assert position[id(under_text)] < position[id(text)]
    assert position[id(object_below)] < position[id(over_object)]  # what is seen beats the convention
    assert position[id(panel)] == 0  # though it came off in the first round, it overlaps nothing
    assert position[id(under_text)] < position[id(small)] < position[id(text)]
    assert sorted(position.values()) == list(range(6))


def test_cli_python_api_and_editor_give_identical_layers(tmp_path, design):
    from PIL import Image

    from layered.app.decompose import decompose_image
    from layered.cli import main as cli
    from layered.stack import LayerStack

    folder = str(_network(tmp_path / "net", seed=3))
    Image.fromarray(design).save(tmp_path / "in.png")
    assert (
        cli(
            ["decompose", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--method", "peel"]
            + ["--model", folder, "--layers", "4"]
        )
        == 0
    )
    from_cli = LayerStack.load(tmp_path / "out" / "in")
    settings = Settings(method="peel", model=folder, layers=4)
    from_api = decomposer(settings)(design)
    from_editor = decompose_image(design, settings, lambda *_: None, threading.Event())
    for other in (from_api, from_editor):
        assert len(other) == len(from_cli) == 4
        for a, b in zip(from_cli, other, strict=True):
            assert (a.x, a.y, a.name, a.kind) == (b.x, b.y, b.name, b.kind)
            assert np.array_equal(a.pixels, b.pixels)
