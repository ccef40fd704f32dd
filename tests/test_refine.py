"""Refinement (`layered.refine`): exact recomposition at the image's size, hidden pixels kept, edges from the image.

Property tests draw random predicted stacks (any N, partial alphas, opacities, offsets) against random
inputs, opaque and RGBA, at 1x and at 2-8x upscales. References are independent of the code under test:
the input pixels themselves, the prediction's own pixels, and nearest-neighbour upscaling of block designs.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import over_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from layered.refine import MARGIN, AspectRatioError, refine
from layered.stack import Layer, LayerStack

SCALES = st.sampled_from([1, 1, 2, 3, 5, 8])


def _random_stack(seed: int, width: int, height: int, count: int, opaque_bottom: bool) -> LayerStack:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(count):
        w, h = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
        pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        pixels[..., 3] = rng.choice([0, 60, 128, 200, 255, 255], (h, w))
        pixels[0, 0, 3] = 255  # never empty
        x, y = int(rng.integers(-w + 1, width)), int(rng.integers(-h + 1, height))
        opacity = float(rng.choice([1.0, 1.0, 0.6]))
        if i == 0 and opaque_bottom:
            pixels, x, y, opacity = rng.integers(0, 256, (height, width, 4), dtype=np.uint8), 0, 0, 1.0
            pixels[..., 3] = 255
        layers.append(Layer(pixels, x, y, f"L{i}", opacity=opacity))
    return LayerStack(width, height, tuple(layers))


@st.composite
def predictions(draw):
    width, height = draw(st.integers(3, 20)), draw(st.integers(3, 20))
    count = draw(st.integers(1, 5))
    return _random_stack(draw(st.integers(0, 2**31)), width, height, count, draw(st.booleans()))


def _random_image(seed: int, width: int, height: int, opaque: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    image[..., 3] = 255 if opaque else rng.choice([0, 1, 90, 255, 255], (height, width))
    return image


def _assert_recomposes(stack: LayerStack, image: np.ndarray) -> None:
    """Composite of `stack` == `image` within 1 level: alpha everywhere, straight RGB where alpha > 0."""
    assert stack.size == (image.shape[1], image.shape[0])
    got = over_reference(stack)  # float64 formula, independent of the compositor
    want = image.astype(np.float64)
    assert np.abs(got[..., 3] - want[..., 3]).max() <= 1.0 + 1e-6
    shows = want[..., 3] > 0
    assert np.abs(got[..., :3] - want[..., :3])[shows].max(initial=0.0) <= 1.0 + 1e-6


@settings(max_examples=60)
@given(predictions(), SCALES, st.booleans(), st.integers(0, 2**31))
def test_refined_layers_recompose_the_input_within_one_level(stack, scale, opaque, seed):
    image = _random_image(seed, stack.width * scale, stack.height * scale, opaque)
    refined = refine(stack, image)
    _assert_recomposes(refined, image)
    assert refined.size == (image.shape[1], image.shape[0])
    assert refined.working_size == stack.size and refined.refined is True
    assert [layer.name for layer in refined] == [layer.name for layer in stack]


@settings(max_examples=40)
@given(predictions(), st.booleans())
def test_a_prediction_that_already_recomposes_comes_back_unchanged(stack, opaque):
    image = stack.composite()
    if opaque:  # an opaque input: flatten the prediction onto an opaque plate first
        plate = Layer(np.full((stack.height, stack.width, 4), (30, 140, 90, 255), np.uint8), 0, 0, "plate")
        stack = stack.replace(layers=(plate, *stack.layers))
        image = stack.composite()
    refined = refine(stack, image)
    for index, (before, after) in enumerate(zip(stack.layers, refined.layers, strict=True)):
        want, got = stack.render_layer(index).astype(int), refined.render_layer(index).astype(int)
        assert np.abs(want[..., 3] - got[..., 3]).max() <= 1, index
        shows = (want[..., 3] > 0) & (got[..., 3] > 0)
        assert np.abs(want[..., :3] - got[..., :3])[shows].max(initial=0) <= 1, index
        assert after.opacity == before.opacity and after.visible == before.visible


def _uniform_stack(seed: int, width: int, height: int, count: int) -> LayerStack:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(count):
        colour = rng.integers(0, 256, 4)
        colour[3] = 255 if i == 0 else rng.choice([70, 255])
        layers.append(Layer(np.tile(colour.astype(np.uint8), (height, width, 1)), 0, 0, f"L{i}"))
    return LayerStack(width, height, tuple(layers))


@settings(max_examples=25)
@given(st.integers(0, 2**31), st.integers(2, 8), st.integers(1, 4))
def test_an_exact_prediction_comes_back_unchanged_when_upscaled(seed, scale, count):
    """Full-canvas flat layers upscale to themselves, so their composite is exact at any scale."""
    stack = _uniform_stack(seed, 6, 5, count)
    image = np.tile(stack.composite()[:1, :1], (5 * scale, 6 * scale, 1))
    refined = refine(stack, image)
    for before, after in zip(stack.layers, refined.layers, strict=True):
        assert after.bbox == (0, 0, 6 * scale, 5 * scale)
        assert np.abs(after.pixels.astype(int) - before.pixels[:1, :1].astype(int)).max() <= 1


def _rect_stack(seed: int, scale: int, width: int = 12, height: int = 10, count: int = 4) -> LayerStack:
    """Flat rectangles at `scale` x: an opaque plate, then `count - 1` rectangles with partial alphas."""
    rng = np.random.default_rng(seed)
    plate = np.tile(rng.integers(0, 256, 4).astype(np.uint8), (height * scale, width * scale, 1))
    plate[..., 3] = 255
    layers = [Layer(plate, 0, 0, "bg")]
    for i in range(1, count):
        w, h = int(rng.integers(2, width)), int(rng.integers(2, height))
        colour = rng.integers(0, 256, 4).astype(np.uint8)
        colour[3] = rng.choice([120, 255])
        x, y = int(rng.integers(-1, width - 1)), int(rng.integers(-1, height - 1))
        layers.append(Layer(np.tile(colour, (h * scale, w * scale, 1)), x * scale, y * scale, f"L{i}"))
    return LayerStack(width * scale, height * scale, tuple(layers))


@settings(max_examples=30)
@given(predictions(), SCALES, st.integers(0, 2**31))
def test_hidden_pixels_keep_their_predicted_colour(stack, scale, seed):
    """Wherever an opaque layer covers layer k in the result, layer k's colour is the prediction's."""
    flat = _uniform_colours(stack, seed)
    image = _random_image(seed, stack.width * scale, stack.height * scale, True)
    refined = refine(flat, image)
    for k in range(len(refined) - 1):
        covered = np.zeros((refined.height, refined.width), bool)
        for j in range(k + 1, len(refined)):
            layer = refined.layers[j]
            if layer.visible and layer.opacity == 1.0:
                covered |= refined.render_layer(j)[..., 3] == 255
        rendered = refined.render_layer(k)
        hidden = covered & (rendered[..., 3] > 0)
        expected = flat.layers[k].pixels[0, 0, :3]  # each layer is one colour: that colour, at any scale
        assert (rendered[hidden][:, :3] == expected).all(), k


def _uniform_colours(stack: LayerStack, seed: int) -> LayerStack:
    """`stack` with each layer painted one colour (its alpha kept), so upscaling cannot change its colour."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in stack.layers:
        pixels = np.array(layer.pixels)
        pixels[..., :3] = rng.integers(0, 256, 3)
        layers.append(layer.replace(pixels=pixels))
    return stack.replace(layers=tuple(layers))


@settings(max_examples=30)
@given(predictions(), SCALES, st.integers(0, 2**31))
def test_no_layer_empties_or_grows_far_outside_its_prediction(stack, scale, seed):
    image = _random_image(seed, stack.width * scale, stack.height * scale, True)
    refined = refine(stack, image)
    on_canvas = [i for i in range(len(stack)) if stack.render_layer(i)[..., 3].any()]
    for index in on_canvas:
        before, after = stack.layers[index], refined.layers[index]
        assert not after.is_empty, index
        if index == on_canvas[0]:
            continue  # the bottom layer receives the coverage that the prediction lacks
        box = before.pixels[..., 3] > 0
        rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
        reach = (MARGIN + 1) * scale + 2  # the support margin, in image pixels, plus block rounding
        left, top = (before.x + cols[0]) * scale - reach, (before.y + rows[0]) * scale - reach
        right, bottom_edge = (before.x + cols[-1] + 1) * scale + reach, (before.y + rows[-1] + 1) * scale + reach
        x0, y0, x1, y1 = after.bbox
        assert left <= x0 and top <= y0 and x1 <= right and y1 <= bottom_edge, index


def _nearest(pixels: np.ndarray, scale: int) -> np.ndarray:
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def test_edges_come_from_the_full_resolution_image():
    """A 16 px design decomposed with wrong colours: at 8x, visible alpha is the image's crisp edge exactly."""

    def solid(w, h, rgba, x=0, y=0):
        return Layer(np.tile(np.array(rgba, np.uint8), (h, w, 1)), x, y, "")

    truth = LayerStack(
        16,
        16,
        (
            solid(16, 16, (20, 60, 200, 255)),
            solid(6, 5, (230, 40, 30, 255), 3, 4),
            solid(5, 5, (250, 250, 20, 255), 7, 6),
        ),
    )
    guess = LayerStack(
        16,
        16,
        (
            solid(16, 16, (60, 60, 150, 255)),
            solid(6, 5, (200, 90, 90, 255), 3, 4),
            solid(5, 5, (200, 200, 90, 255), 7, 6),
        ),
    )
    image = _nearest(truth.composite(), 8)
    refined = refine(guess, image)
    assert np.array_equal(refined.composite(), image)
    top = refined.render_layer(2)
    assert np.array_equal(top[..., 3], _nearest(truth.render_layer(2)[..., 3], 8))
    assert (top[top[..., 3] > 0][:, :3] == (250, 250, 20)).all()  # the image's colour, not the guess
    middle = refined.render_layer(1)[..., 3].astype(int)
    shows = _nearest(truth.render_layer(2)[..., 3], 8) == 0
    assert np.array_equal(middle[shows], _nearest(truth.render_layer(1)[..., 3], 8)[shows])


@settings(max_examples=20)
@given(st.integers(0, 2**31), st.sampled_from([2, 4, 8]))
def test_snapped_alpha_is_closer_to_the_truth_than_upscaled_alpha(seed, scale):
    """Rectangle designs, predicted at 1/scale: refined alpha (where it shows) beats the plain upscale."""
    truth = _rect_stack(seed, scale)
    small = LayerStack(
        truth.width // scale,
        truth.height // scale,
        tuple(Layer(_box_down(truth.render_layer(i), scale), 0, 0, layer.name) for i, layer in enumerate(truth)),
    )
    image = truth.composite()
    refined = refine(small, image)
    plain = refine(small, image, snap=False)
    err_snap = err_plain = 0.0
    for i in range(1, len(truth)):
        want = truth.render_layer(i)[..., 3].astype(float)
        err_snap += np.abs(refined.render_layer(i)[..., 3] - want).sum()
        err_plain += np.abs(plain.render_layer(i)[..., 3] - want).sum()
    assert err_snap <= err_plain
    _assert_recomposes(refined, image)


def _box_down(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Premultiplied box downscale (what a decomposer working at 1/scale would see at best)."""
    h, w = pixels.shape[0] // scale, pixels.shape[1] // scale
    f = pixels.astype(np.float64) / 255.0
    f[..., :3] *= f[..., 3:]
    f = f.reshape(h, scale, w, scale, 4).mean(axis=(1, 3))
    rgb = np.divide(f[..., :3], f[..., 3:], out=np.zeros_like(f[..., :3]), where=f[..., 3:] > 0)
    return (np.concatenate([rgb, f[..., 3:]], axis=-1) * 255 + 0.5).astype(np.uint8)


def test_aspect_ratio_mismatch_is_a_value_error_naming_both_sizes():
    stack = _random_stack(0, 64, 64, 2, True)
    with pytest.raises(ValueError, match=r"64x64.*256x128") as info:
        refine(stack, np.zeros((128, 256, 4), np.uint8))
    assert isinstance(info.value, AspectRatioError)
    refine(stack, np.zeros((250, 256, 3), np.uint8))  # within rounding of a working size: accepted


def test_hidden_and_transparent_layers_are_only_resized():
    stack = _random_stack(3, 8, 8, 3, True)
    stack = stack.replace(layers=(stack[0], stack[1].replace(visible=False), stack[2].replace(opacity=0.0)))
    image = _random_image(4, 16, 16, True)
    refined = refine(stack, image)
    _assert_recomposes(refined, image)
    assert refined[1].visible is False and refined[2].opacity == 0.0
    assert refined[1].width <= stack[1].width * 2 and not refined[1].is_empty


def test_an_empty_prediction_gets_the_image_as_a_layer():
    empty = LayerStack(4, 4, (Layer(np.zeros((0, 0, 4), np.uint8), 0, 0, "nothing"),))
    image = _random_image(5, 8, 8, False)
    refined = refine(empty, image)
    _assert_recomposes(refined, image)
    assert [layer.name for layer in refined] == ["nothing", "image"]


def test_refinement_is_recorded_in_layers_json(tmp_path):
    refined = refine(_random_stack(6, 8, 6, 2, True), _random_image(7, 32, 24, True))
    loaded = LayerStack.load(refined.save(tmp_path / "out"))
    assert loaded.working_size == (8, 6) and loaded.refined is True
    assert np.array_equal(loaded.composite(), refined.composite())


def test_layers_json_without_the_record_still_loads(tmp_path):
    """Folders written before refinement existed have neither key: they load with both unknown (None)."""
    folder = _random_stack(8, 5, 5, 2, True).save(tmp_path / "old")
    doc = (folder / "layers.json").read_text(encoding="utf-8")
    assert "working_size" not in doc and "refined" not in doc
    loaded = LayerStack.load(folder)
    assert loaded.working_size is None and loaded.refined is None
