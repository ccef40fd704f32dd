"""Layer edits against independent references: numpy (rot90, flips, shifts), colorsys, hand-worked pixels."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from helpers import over_reference, random_stack
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from layered import edits
from layered.pixels import premultiply
from layered.stack import Layer, LayerStack

BILINEAR = Image.Resampling.BILINEAR


@pytest.fixture(scope="module")
def photo(shared_dir) -> np.ndarray:
    """A real illustration, 96 x 64, with a soft alpha ramp so that colour meets partial alpha."""
    with Image.open(shared_dir / "images" / "qwen-test-1.png") as im:
        rgba = np.array(im.convert("RGBA").resize((96, 64), Image.Resampling.LANCZOS))
    rgba[..., 3] = np.linspace(40, 255, 96).astype(np.uint8)[None, :]
    return rgba


def _opaque_random(rng, h, w) -> np.ndarray:
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = rng.integers(1, 256, (h, w))  # every pixel kept, so no re-cropping
    return pixels


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`image` translated by (dx, dy) with transparent fill: an independent reference for move."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    src = image[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


# ---- move ----------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dx=st.integers(-50, 50), dy=st.integers(-40, 40), index=st.integers(0, 2))
def test_move_changes_only_the_offset_and_shifts_the_render(seed, dx, dy, index):
    stack = random_stack(np.random.default_rng(seed), canvas=(40, 30), count=3)
    moved = edits.move(stack, index, dx, dy)
    before, after = stack.layers[index], moved.layers[index]
    assert after.pixels is before.pixels and (after.x, after.y) == (before.x + dx, before.y + dy)
    assert (after.name, after.opacity, after.visible) == (before.name, before.opacity, before.visible)
    assert all(a is b for k, (a, b) in enumerate(zip(stack.layers, moved.layers, strict=True)) if k != index)
    # render on a canvas large enough that nothing leaves it, then compare with a numpy translation
    big = LayerStack(200, 200, tuple(lay.replace(x=lay.x + 80, y=lay.y + 80) for lay in stack.layers))
    assert np.array_equal(edits.move(big, index, dx, dy).render_layer(index), _shift(big.render_layer(index), dx, dy))


def test_move_whole_single_layer_shifts_composite(photo):
    stack = LayerStack(120, 90, (Layer(photo, 10, 12),))
    out = edits.move_to(edits.move(stack, 0, 3, 4), 0, 17, 5)
    assert (out.layers[0].x, out.layers[0].y) == (17, 5)
    assert np.array_equal(out.composite(), _shift(stack.composite(), 7, -7))


# ---- scale ---------------------------------------------------------------------------------------


def _naive_resize(pixels: np.ndarray, size, resample) -> np.ndarray:
    """Straight-alpha resampling, channel by channel: what premultiplication is there to avoid."""
    bands = [np.asarray(Image.fromarray(pixels[..., c].astype(np.float32)).resize(size, resample)) for c in range(4)]
    return (np.stack(bands, axis=-1) + 0.5).clip(0, 255).astype(np.uint8)


def test_scale_is_premultiplied_no_fringe_by_hand():
    # a 2-pixel edge: opaque red, then a transparent pixel whose hidden colour is green
    edge = np.array([[[255, 0, 0, 255], [0, 255, 0, 0]]], np.uint8)
    stack = LayerStack(8, 3, (Layer(edge, 3, 1),))
    out = edits.scale(stack, 0, 2.0, 1.0, resample=BILINEAR).layers[0]
    # Bilinear 2x: output centres sit at input x = 0.25, 0.75, 1.25, 1.75 (input centres 0.5, 1.5), weights
    # (1, 0), (.75, .25), (.25, .75), (0, 1). Premultiplied: alpha 1, .75, .25, 0 -> 255, 191, 64, 0 and the
    # colour stays pure red: (.75 * red) / .75. The last pixel is transparent and cropped away.
    expected = np.array([[[255, 0, 0, 255], [255, 0, 0, 191], [255, 0, 0, 64]]], np.uint8)
    assert np.array_equal(out.pixels, expected)
    # new width 4 about the centre x = 4: x = 4 - 2 = 2
    assert (out.x, out.y) == (2, 1)
    # the same check fails for naive straight-alpha resampling: red darkens and green bleeds in
    naive = _naive_resize(edge, (4, 1), BILINEAR)[:, :3]
    assert not np.array_equal(naive, expected)
    assert naive[0, 1, 0] == 191 and naive[0, 1, 1] == 64


def test_scale_nearest_2x_equals_repeat_about_centre_and_anchor(rng):
    pixels = _opaque_random(rng, 5, 7)
    stack = LayerStack(50, 40, (Layer(pixels, 10, 8),))
    out = edits.scale(stack, 0, 2, resample=Image.Resampling.NEAREST).layers[0]
    assert np.array_equal(out.pixels, np.repeat(np.repeat(pixels, 2, axis=0), 2, axis=1))
    # centre (13.5, 10.5) kept: size 14 x 10 -> top-left (6.5 -> 6 or 7, 5.5 -> 5 or 6)
    assert abs(out.x + 7 - 13.5) <= 0.5 and abs(out.y + 5 - 10.5) <= 0.5
    anchored = edits.scale(stack, 0, 3, 0.5, anchor=(10, 8), resample=Image.Resampling.NEAREST).layers[0]
    assert (anchored.x, anchored.y, anchored.width, anchored.height) == (10, 8, 21, 2)  # round(2.5) -> 2
    anchored = edits.scale(stack, 0, 2, anchor=(17, 13), resample=Image.Resampling.NEAREST).layers[0]
    assert (anchored.x + anchored.width, anchored.y + anchored.height) == (17, 13)  # bottom-right kept


def test_scale_box_half_is_premultiplied_block_mean(photo):
    stack = LayerStack(96, 64, (Layer(photo, 0, 0),))
    out = edits.scale(stack, 0, 0.5, anchor=(0, 0), resample=Image.Resampling.BOX).layers[0]
    blocks = premultiply(photo).reshape(32, 2, 48, 2, 4).mean(axis=(1, 3))
    rgb = blocks[..., :3] / blocks[..., 3:4]
    assert np.abs(out.pixels[..., 3] / 255.0 - blocks[..., 3]).max() <= 0.51 / 255
    assert np.abs(out.pixels[..., :3] / 255.0 - rgb).max() <= 0.51 / 255


def test_scale_rejects_bad_factors():
    stack = LayerStack(4, 4, (Layer(np.full((2, 2, 4), 255, np.uint8)),))
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            edits.scale(stack, 0, bad)
    with pytest.raises(ValueError, match="larger than"):
        edits.scale(stack, 0, 10_000)


# ---- rotate --------------------------------------------------------------------------------------


@pytest.mark.parametrize("quarter", [1, 2, 3, -1])
def test_rotate_quarter_turns_equal_rot90(rng, quarter):
    pixels = _opaque_random(rng, 5, 8)  # sizes of different parity: centre kept to half a pixel
    stack = LayerStack(40, 40, (Layer(pixels, 11, 17),))
    out = edits.rotate(stack, 0, 90 * quarter).layers[0]
    assert np.array_equal(out.pixels, np.rot90(pixels, quarter))
    cx, cy = out.x + out.width / 2, out.y + out.height / 2
    assert abs(cx - (11 + 4)) <= 0.5 and abs(cy - (17 + 2.5)) <= 0.5


def test_rotate_direction_is_counter_clockwise():
    marker = np.zeros((3, 3, 4), np.uint8)
    marker[...] = (0, 0, 255, 255)
    marker[1, 2] = (255, 0, 0, 255)  # red on the right edge
    out = edits.rotate(LayerStack(9, 9, (Layer(marker, 3, 3),)), 0, 90).layers[0]
    assert tuple(out.pixels[0, 1]) == (255, 0, 0, 255)  # ...ends at the top


def test_rotate_there_and_back_keeps_content_centre_and_area(photo):
    stack = LayerStack(200, 200, (Layer(photo, 50, 60),))
    turned = edits.rotate(stack, 0, 30)
    layer = turned.layers[0]
    assert layer.width > photo.shape[1] and layer.height > photo.shape[0]  # the box grew to hold it all

    def moments(s):
        a = s.render_layer(0)[..., 3].astype(float)
        ys, xs = np.mgrid[: a.shape[0], : a.shape[1]]
        return a.sum(), (a * xs).sum() / a.sum(), (a * ys).sum() / a.sum()

    (area0, x0, y0), (area1, x1, y1) = moments(stack), moments(turned)
    assert area1 == pytest.approx(area0, rel=0.01)
    # the alpha centroid turns 30 degrees counter-clockwise (on screen, y down) about the layer's centre,
    # which sits at pixel-index coordinates (50 + 48 - 0.5, 60 + 32 - 0.5) and may move by half a pixel
    cx, cy = 97.5, 91.5
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    ex, ey = cx + c * (x0 - cx) + s * (y0 - cy), cy - s * (x0 - cx) + c * (y0 - cy)
    assert abs(x1 - ex) <= 0.6 and abs(y1 - ey) <= 0.6
    back = edits.rotate(turned, 0, -30).render_layer(0).astype(int)
    ref = stack.render_layer(0).astype(int)
    inner = np.zeros(ref.shape[:2], bool)
    inner[60 + 4 : 60 + 64 - 4, 50 + 4 : 50 + 96 - 4] = True  # away from the edges, which get blurred
    assert np.median(np.abs(back - ref)[inner]) <= 3
    assert np.abs(back[..., 3] - ref[..., 3])[inner].max() <= 3


# ---- flip ----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), direction=st.sampled_from(["horizontal", "vertical", "h", "v"]))
def test_flip_twice_is_identity_and_once_mirrors(seed, direction):
    stack = random_stack(np.random.default_rng(seed), count=2)
    once = edits.flip(stack, 1, direction)
    axis = 1 if direction[0] == "h" else 0
    assert np.array_equal(once.layers[1].pixels, np.flip(stack.layers[1].pixels, axis))
    assert once.layers[1].bbox == stack.layers[1].bbox
    twice = edits.flip(once, 1, direction)
    assert np.array_equal(twice.layers[1].pixels, stack.layers[1].pixels)
    assert np.array_equal(twice.composite(), stack.composite())


def test_flip_rejects_unknown_direction(rng):
    with pytest.raises(ValueError, match="horizontal"):
        edits.flip(random_stack(rng), 0, "diagonal")


# ---- recolour ------------------------------------------------------------------------------------


def _colorsys_reference(rgb, *, hue, saturation, brightness, tint, strength):
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    r, g, b = colorsys.hsv_to_rgb((h + hue / 360.0) % 1.0, min(s * saturation, 1.0), min(v * brightness, 1.0))
    out = [c * (1 - strength) + t / 255.0 * strength for c, t in zip((r, g, b), tint, strict=True)]
    return np.array([round(c * 255.0) for c in out])


@pytest.mark.parametrize(
    "hue, saturation, brightness, tint, strength",
    [
        (0, 1, 1, (0, 0, 0), 0),
        (120, 1, 1, (0, 0, 0), 0),
        (-45, 0.3, 1.4, (0, 0, 0), 0),
        (200, 1.8, 0.6, (255, 128, 0), 0.35),
    ],
)
def test_recolor_matches_colorsys_on_sampled_pixels(photo, rng, *, hue, saturation, brightness, tint, strength):
    stack = LayerStack(96, 64, (Layer(photo),))
    out = edits.recolor(
        stack, 0, hue=hue, saturation=saturation, brightness=brightness, tint=tint, tint_strength=strength
    ).layers[0]
    assert np.array_equal(out.pixels[..., 3], photo[..., 3])  # alpha untouched
    ys, xs = rng.integers(0, 64, 300), rng.integers(0, 96, 300)
    for y, x in zip(ys, xs, strict=True):
        ref = _colorsys_reference(
            photo[y, x, :3], hue=hue, saturation=saturation, brightness=brightness, tint=tint, strength=strength
        )
        assert np.abs(out.pixels[y, x, :3].astype(int) - ref).max() <= 1, (y, x)


def test_recolor_full_tint_and_css_colour(photo):
    stack = LayerStack(96, 64, (Layer(photo),))
    out = edits.recolor(stack, 0, tint="#3366cc", tint_strength=1.0).layers[0]
    assert (out.pixels[..., :3] == (0x33, 0x66, 0xCC)).all()
    assert np.array_equal(out.pixels[..., 3], photo[..., 3])
    grey = edits.recolor(stack, 0, saturation=0).layers[0].pixels.astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    with pytest.raises(ValueError):
        edits.recolor(stack, 0, tint_strength=1.5)
    with pytest.raises(ValueError):
        edits.recolor(stack, 0, tint=(300, 0, 0), tint_strength=0.5)


# ---- properties ----------------------------------------------------------------------------------


def test_opacity_visibility_and_name(rng):
    stack = random_stack(rng, count=3)
    half = edits.set_opacity(stack, 1, 0.5)
    assert half.layers[1].opacity == 0.5 and half.layers[1].pixels is stack.layers[1].pixels
    assert np.abs(half.composite().astype(float) - over_reference(half)).max() <= 1.0
    with pytest.raises(ValueError):
        edits.set_opacity(stack, 1, 1.2)
    hidden = edits.hide(stack, 2)
    assert not hidden.layers[2].visible
    assert np.array_equal(hidden.composite(), edits.delete(stack, 2).composite())
    assert np.array_equal(edits.show(hidden, 2).composite(), stack.composite())
    assert edits.set_visible(stack, 0, False).layers[0].visible is False
    assert edits.rename(stack, -1, "sky").layers[2].name == "sky"


# ---- structure -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 6), data=st.data())
def test_reorder_moves_one_layer_by_identity(count, data):
    stack = random_stack(np.random.default_rng(count), count=count)
    i, j = data.draw(st.integers(0, count - 1)), data.draw(st.integers(0, count - 1))
    out = edits.reorder(stack, i, j)
    expected = [lay for k, lay in enumerate(stack.layers) if k != i]
    expected.insert(j, stack.layers[i])
    assert all(a is b for a, b in zip(out.layers, expected, strict=True))
    back = edits.reorder(out, j, i)
    assert all(a is b for a, b in zip(back.layers, stack.layers, strict=True))


def test_delete_and_duplicate_by_identity(rng):
    stack = random_stack(rng, count=4)
    a, b, c, d = stack.layers
    out = edits.delete(stack, 1)
    assert len(out) == 3 and out.layers[0] is a and out.layers[1] is c and out.layers[2] is d
    assert edits.delete(stack, -1).layers == (a, b, c)
    dup = edits.duplicate(stack, 2)
    assert dup.layers[:3] == (a, b, c) and dup.layers[4] is d
    copy = dup.layers[3]
    assert copy is not c and copy.name == f"{c.name} copy" and np.array_equal(copy.pixels, c.pixels)
    assert (copy.x, copy.y, copy.opacity, copy.visible) == (c.x, c.y, c.opacity, c.visible)
    assert edits.duplicate(stack, 0, name="again").layers[1].name == "again"


def _premul_close(a: np.ndarray, b: np.ndarray) -> None:
    """Two composites agree to one uint8 step: alpha within 1, colour within 1 where at least half opaque.

    Below half opacity a straight colour is ill-conditioned (one alpha step moves it by more than one).
    Premultiplied, the error is bounded by three roundings: storing the merged layer as straight uint8
    (alpha and colour each off by <= 0.5/255, so <= 1/255 premultiplied, only attenuated by the layers
    above) and rounding each of the two final composites to straight uint8 (<= 1/255 each): 3/255.
    """
    a, b = a.astype(int), b.astype(int)
    assert np.abs(a[..., 3] - b[..., 3]).max() <= 1
    solid = a[..., 3] >= 128
    assert np.abs(a[..., :3] - b[..., :3])[solid].max(initial=0) <= 1
    assert np.abs(premultiply(a.astype(np.uint8)) - premultiply(b.astype(np.uint8))).max() <= 3 / 255


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), index=st.integers(1, 3), hidden=st.lists(st.booleans(), min_size=4, max_size=4))
def test_merge_down_composites_as_before(seed, index, hidden):
    stack = random_stack(np.random.default_rng(seed), canvas=(36, 28), count=4)
    stack = stack.replace(layers=tuple(lay.replace(visible=not h) for lay, h in zip(stack.layers, hidden, strict=True)))
    out = edits.merge_down(stack, index)
    assert len(out) == 3
    merged = out.layers[index - 1]
    lower, upper = stack.layers[index - 1], stack.layers[index]
    assert merged.name == lower.name and merged.opacity == 1.0
    assert merged.visible == (lower.visible or upper.visible)
    assert all(a is b for a, b in zip(out.layers[index:], stack.layers[index + 1 :], strict=True))
    _premul_close(out.composite(), stack.composite())
    # against the float formula too (not only our own compositor)
    ref = over_reference(stack)
    ours = out.composite().astype(float)
    assert np.abs(ours[..., 3] - ref[..., 3]).max() <= 1.5


def test_merge_down_of_two_hidden_layers_keeps_both_hidden(rng):
    stack = random_stack(rng, count=3)
    stack = edits.hide(edits.hide(stack, 1), 2)
    out = edits.merge_down(stack, 2)
    assert not out.layers[1].visible
    assert np.array_equal(out.composite(), stack.composite())
    _premul_close(edits.show(out, 1).composite(), edits.show(edits.show(stack, 1), 2).composite())


def test_merge_down_keeps_off_canvas_content():
    red, blue = np.zeros((4, 4, 4), np.uint8), np.zeros((2, 2, 4), np.uint8)
    red[...], blue[...] = (255, 0, 0, 255), (0, 0, 255, 255)
    stack = LayerStack(6, 6, (Layer(red, -2, -2), Layer(blue, 5, 5)))
    merged = edits.merge_down(stack, 1).layers[0]
    assert (merged.x, merged.y, merged.width, merged.height) == (-2, -2, 9, 9)
    assert tuple(merged.pixels[0, 0]) == (255, 0, 0, 255) and tuple(merged.pixels[8, 8]) == (0, 0, 255, 255)
    moved = edits.move(edits.merge_down(stack, 1), 0, 2, 2)
    assert tuple(moved.composite()[0, 0]) == (255, 0, 0, 255)  # what was off the canvas comes back


def test_merge_down_of_the_bottom_layer_is_an_error(rng):
    with pytest.raises(ValueError, match="bottom"):
        edits.merge_down(random_stack(rng), 0)


def test_replace_pixels_at_offset_centre_or_new_place(photo):
    stack = LayerStack(200, 150, (Layer(np.full((10, 10, 4), 255, np.uint8), 30, 40, "logo", 0.7, False),))
    padded = np.zeros((70, 100, 4), np.uint8)
    padded[3:67, 4:100] = photo
    kept = edits.replace_pixels(stack, 0, padded).layers[0]
    assert np.array_equal(kept.pixels, photo)  # cropped to content...
    assert (kept.x, kept.y) == (34, 43)  # ...and the crop shifts the offset
    assert (kept.name, kept.opacity, kept.visible) == ("logo", 0.7, False)
    centred = edits.replace_pixels(stack, 0, Image.fromarray(photo), at="center").layers[0]
    assert (centred.x + 48, centred.y + 32) == (35, 45)  # same centre as the old 10 x 10 layer
    placed = edits.replace_pixels(stack, 0, photo[..., :3], at=(5, 6)).layers[0]
    assert (placed.x, placed.y) == (5, 6) and (placed.pixels[..., 3] == 255).all()
    assert np.array_equal(placed.pixels[..., :3], photo[..., :3])
    with pytest.raises(ValueError, match="uint8"):
        edits.replace_pixels(stack, 0, photo.astype(np.float32))


# ---- indices and purity --------------------------------------------------------------------------

EDITS = [
    lambda s, i: edits.move(s, i, 1, 1),
    lambda s, i: edits.move_to(s, i, 1, 1),
    lambda s, i: edits.scale(s, i, 1.5),
    lambda s, i: edits.rotate(s, i, 33),
    lambda s, i: edits.flip(s, i),
    lambda s, i: edits.recolor(s, i, hue=90, tint=(0, 255, 0), tint_strength=0.5),
    lambda s, i: edits.set_opacity(s, i, 0.3),
    lambda s, i: edits.hide(s, i),
    lambda s, i: edits.rename(s, i, "x"),
    lambda s, i: edits.reorder(s, i, 0),
    lambda s, i: edits.delete(s, i),
    lambda s, i: edits.duplicate(s, i),
    lambda s, i: edits.merge_down(s, i),
    lambda s, i: edits.replace_pixels(s, i, np.full((3, 3, 4), 9, np.uint8)),
]


@pytest.mark.parametrize("edit", EDITS)
def test_out_of_range_index_is_a_clear_error(rng, edit):
    stack = random_stack(rng, count=3)
    with pytest.raises(IndexError, match="out of range for a stack of 3 layers"):
        edit(stack, 3)
    with pytest.raises(IndexError):
        edit(stack, -4)
    with pytest.raises(TypeError):
        edit(stack, 1.0)


@pytest.mark.parametrize("edit", EDITS)
def test_edits_return_a_new_stack_and_leave_the_input_alone(rng, edit):
    stack = random_stack(rng, count=3)
    snapshot = [(lay, lay.x, lay.y, lay.name, lay.opacity, lay.visible, lay.pixels.copy()) for lay in stack.layers]
    out = edit(stack, 2)
    assert out is not stack and isinstance(out, LayerStack)
    assert stack.layers == tuple(s[0] for s in snapshot)
    for lay, *fields, pixels in snapshot:
        assert [lay.x, lay.y, lay.name, lay.opacity, lay.visible] == fields and np.array_equal(lay.pixels, pixels)
    assert out.layers != stack.layers


def test_edits_of_an_empty_layer_are_harmless():
    stack = LayerStack(5, 5, (Layer(np.zeros((0, 0, 4), np.uint8)),))
    for edit in (lambda s: edits.scale(s, 0, 2), lambda s: edits.rotate(s, 0, 10), lambda s: edits.flip(s, 0)):
        assert edit(stack).layers[0].is_empty
