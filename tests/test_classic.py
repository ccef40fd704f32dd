"""The classic decomposer on synthetic designs with known layers (drawn here with PIL) and on real illustrations."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from layered.classic import _dilate, _fill, _hull_mask, decompose_classic, label_components
from layered.errors import InputError

SIZE = 256
SUPERSAMPLE = 4
BACKGROUND = (240, 236, 220)
TRANSLUCENT = 140  # alpha of the translucent shape in design "overlap"

# each design: bottom-first shapes (kind, box as canvas fractions, RGBA colour) over an opaque background
DESIGNS = {
    "overlap": [
        ("rectangle", (0.10, 0.15, 0.55, 0.60), (200, 40, 40, 255)),
        ("ellipse", (0.40, 0.35, 0.85, 0.80), (30, 70, 200, TRANSLUCENT)),
        ("rectangle", (0.60, 0.08, 0.90, 0.30), (40, 160, 60, 255)),
    ],
    "nested": [
        ("rectangle", (0.08, 0.10, 0.70, 0.75), (250, 200, 40, 255)),
        ("ellipse", (0.20, 0.25, 0.50, 0.55), (120, 40, 150, 255)),
    ],
    "stacked": [
        ("rectangle", (0.05, 0.50, 0.60, 0.95), (20, 120, 180, 255)),
        ("ellipse", (0.35, 0.30, 0.80, 0.75), (230, 120, 30, 255)),
        ("polygon", ((0.70, 0.05), (0.95, 0.45), (0.55, 0.40)), (60, 60, 60, 255)),
        ("rectangle", (0.05, 0.05, 0.30, 0.25), (180, 200, 250, 255)),
    ],
}


def _shape_layer(kind: str, geometry, colour) -> np.ndarray:
    """A full-canvas RGBA layer with one anti-aliased shape: drawn 4x larger, box-averaged (straight alpha is exact
    because the transparent pixels carry the shape's colour)."""
    big = SIZE * SUPERSAMPLE
    canvas = Image.new("RGBA", (big, big), (*colour[:3], 0))
    draw = ImageDraw.Draw(canvas)
    if kind == "polygon":
        draw.polygon([(x * big, y * big) for x, y in geometry], fill=colour)
    else:
        box = [round(v * big) for v in geometry]
        getattr(draw, kind)(box, fill=colour)
    return np.asarray(canvas.reduce(SUPERSAMPLE))


def make_design(name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(RGB input composited by PIL, ground-truth full-canvas RGBA layers bottom-first)."""
    layers = [np.asarray(Image.new("RGBA", (SIZE, SIZE), (*BACKGROUND, 255)))]
    layers += [_shape_layer(*shape) for shape in DESIGNS[name]]
    out = Image.new("RGBA", (SIZE, SIZE))
    for layer in layers:
        out = Image.alpha_composite(out, Image.fromarray(layer))
    return np.asarray(out)[..., :3].copy(), layers


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Soft IoU of two alpha maps in [0, 1]: sum of minima over sum of maxima."""
    return float(np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-9))


def predicted_alphas(stack) -> list[np.ndarray]:
    return [stack.render_layer(i)[..., 3] / 255.0 for i in range(len(stack))]


@pytest.fixture(scope="module")
def results():
    out = {}
    for name in DESIGNS:
        image, truth = make_design(name)
        out[name] = (image, truth, decompose_classic(image, "auto"))
    return out


@pytest.mark.parametrize("name", DESIGNS)
def test_recomposition_matches_input(results, name):
    image, _, stack = results[name]
    assert psnr(stack.composite()[..., :3], image) >= 35.0
    assert (stack.composite()[..., 3] == 255).all()


@pytest.mark.parametrize("name", DESIGNS)
def test_auto_finds_the_true_layer_count(results, name):
    _, truth, stack = results[name]
    assert len(stack) == len(truth)


@pytest.mark.parametrize("name", DESIGNS)
def test_each_true_layer_is_matched_in_order(results, name):
    """Every ground-truth layer has a predicted layer with alpha soft IoU >= 0.9, and the matches keep the order."""
    _, truth, stack = results[name]
    pred = predicted_alphas(stack)
    matches = []
    for layer in truth:
        scores = [soft_iou(layer[..., 3] / 255.0, p) for p in pred]
        best = int(np.argmax(scores))
        assert scores[best] >= 0.9, (name, scores)
        matches.append(best)
    assert matches == sorted(matches) and len(set(matches)) == len(matches)


def test_translucent_shape_gets_its_opacity_and_colour(results):
    """The translucent ellipse is one layer of alpha 140/255 and its own colour, over both red and background."""
    _, truth, stack = results["overlap"]
    target = truth[2][..., 3] == TRANSLUCENT
    layer = max(range(len(stack)), key=lambda i: soft_iou(truth[2][..., 3] / 255.0, predicted_alphas(stack)[i]))
    inside = stack.render_layer(layer)[target].astype(int)
    # the red rectangle's anti-aliased edge runs under the ellipse: a 1-px line there may differ
    assert np.mean(np.abs(inside[:, 3] - TRANSLUCENT) <= 4) >= 0.98
    assert np.mean(np.abs(inside[:, :3] - (30, 70, 200)).max(axis=1) <= 6) >= 0.98


def test_occluded_rectangle_is_completed_under_the_shapes(results):
    """The red rectangle under the translucent ellipse is whole in its layer (filled where it is covered)."""
    _, truth, stack = results["overlap"]
    red = truth[1][..., 3] / 255.0
    best = max(soft_iou(red, p) for p in predicted_alphas(stack))
    assert best >= 0.97


@pytest.mark.parametrize("name", DESIGNS)
def test_background_is_an_opaque_whole_plate(results, name):
    _, _, stack = results[name]
    background = stack.render_layer(0)
    assert (background[..., 3] == 255).all()
    # under the shapes, the plate continues the background colour
    assert np.abs(background[..., :3].astype(int) - BACKGROUND).max() <= 3


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_layers_n_gives_exactly_n_nonempty_layers(count):
    image, _ = make_design("stacked")
    stack = decompose_classic(image, count)
    assert len(stack) == count
    assert not any(layer.is_empty for layer in stack)
    assert psnr(stack.composite()[..., :3], image) >= 35.0


def test_one_layer_is_the_opaque_image():
    image, _ = make_design("overlap")
    stack = decompose_classic(image, 1)
    assert len(stack) == 1
    np.testing.assert_array_equal(stack.render_layer(0)[..., :3], image)
    assert (stack.render_layer(0)[..., 3] == 255).all()


def test_uniform_image_is_one_background_and_can_be_split():
    image = np.full((40, 60, 3), (12, 34, 56), np.uint8)
    assert len(decompose_classic(image)) == 1
    stack = decompose_classic(image, 3)
    assert len(stack) == 3 and not any(layer.is_empty for layer in stack)
    np.testing.assert_array_equal(stack.composite()[..., :3], image)


def test_alpha_input_is_flattened_over_white():
    image, _ = make_design("nested")
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    rgba[:, : SIZE // 4, 3] = 0  # left quarter transparent
    rgba[:, SIZE // 4 : SIZE // 2, 3] = 128
    over_white = Image.alpha_composite(Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 255)), Image.fromarray(rgba))
    stack = decompose_classic(rgba)
    assert psnr(stack.composite()[..., :3], np.asarray(over_white)[..., :3]) >= 35.0


@pytest.mark.parametrize("bad", [0, -2, "many", True, 2.5])
def test_bad_layer_count_is_an_input_error(bad):
    with pytest.raises(InputError):
        decompose_classic(np.zeros((8, 8, 3), np.uint8), bad)


def test_bad_image_is_an_input_error():
    with pytest.raises(InputError):
        decompose_classic(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(InputError):
        decompose_classic(np.zeros((8, 8, 3), np.float32))


def _flood_fill_count(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Reference 4-connected labelling by breadth-first search, ids in raster order of each component's first pixel."""
    h, w = values.shape
    out = np.full((h, w), -1)
    n = 0
    for y in range(h):
        for x in range(w):
            if out[y, x] >= 0:
                continue
            out[y, x] = n
            queue = deque([(y, x)])
            while queue:
                cy, cx = queue.popleft()
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < h and 0 <= nx < w and out[ny, nx] < 0 and values[ny, nx] == values[cy, cx]:
                        out[ny, nx] = n
                        queue.append((ny, nx))
            n += 1
    return out, n


@pytest.mark.parametrize("seed", range(4))
def test_label_components_matches_flood_fill(seed):
    """The same components and the same ids: classic's tie-breaks (speck merging, group order) follow the ids."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, (23, 31)) * 7 - 5  # any integers, negative ones too
    values[5:15, 3:20] = 2  # a big blob with spirals of other values inside
    values[7:13:2, 5:18] = 9
    labels, n = label_components(values)
    reference, m = _flood_fill_count(values)
    assert n == m
    np.testing.assert_array_equal(labels, reference)


@pytest.mark.parametrize("seed", range(3))
def test_dilation_is_ndimage_square_dilation(seed):
    """classic keeps its own square dilation only for speed (bench_classic.py --helpers): the same pixels as
    scipy.ndimage's, the outside of the image counting as empty."""
    rng = np.random.default_rng(seed)
    for shape, radius in (((37, 53), 1), ((40, 29), 4), ((6, 3), 5), ((64, 64), 9)):
        mask = rng.random(shape) < 0.03
        mask[0, -1] = True  # a pixel on the border
        square = np.ones((2 * radius + 1, 2 * radius + 1), bool)
        np.testing.assert_array_equal(_dilate(mask, radius), ndimage.binary_dilation(mask, square))


def test_fill_is_push_pull_by_hand():
    """classic's own fill (ndimage has no push-pull; its nearest-pixel fill is another operation and gives other
    layers): each hidden pixel takes the mean of the known pixels in the smallest enclosing 2^k block that has any."""
    values = np.zeros((4, 4, 3), np.float32)
    known = np.zeros((4, 4), bool)
    values[0, 0], values[0, 3] = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    known[0, 0] = known[0, 3] = True
    filled = _fill(values, known)
    red, blue, purple = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.0, 0.5)
    expected = np.array([[red, red, blue, blue], [red, red, blue, blue], [purple] * 4, [purple] * 4], np.float32)
    np.testing.assert_allclose(filled, expected, atol=1e-6)
    nearest = ndimage.distance_transform_edt(~known, return_distances=False, return_indices=True)
    assert not np.allclose(values[nearest[0], nearest[1]], expected)  # ndimage's nearest fill: red at (3, 0)
    uniform = np.zeros((7, 9, 3), np.float32)
    some = np.zeros((7, 9), bool)
    some[1, 2] = some[5, 8] = True
    uniform[some] = 0.25
    np.testing.assert_allclose(_fill(uniform, some, first=2), 0.25, atol=1e-6)  # block steps keep one colour


def _depth(point, polygon) -> float:
    """How far `point` lies inside the convex `polygon` (negative: outside), by the distance to each edge line."""
    x, y = point
    corners = np.asarray(polygon, float)
    ax, ay = corners.T
    bx, by = np.roll(corners, -1, axis=0).T
    orientation = np.sign(((ax * by) - (bx * ay)).sum())  # +1 or -1: the polygon's winding
    return float((orientation * ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / np.hypot(bx - ax, by - ay)).min())


def test_hull_mask_fills_the_convex_hull_of_the_pixels():
    """Two separate squares: the mask is the hexagon around both (pixel (x, y) is the square around (x, y)),
    exact wherever a pixel centre is more than one pixel from the hexagon's edge."""
    ys, xs = np.mgrid[0:10, 0:10]
    ys, xs = np.concatenate([ys.ravel(), ys.ravel() + 30]), np.concatenate([xs.ravel(), xs.ravel() + 30])
    mask, (top, left) = _hull_mask(ys, xs)
    assert (top, left) == (0, 0) and mask.shape == (40, 40)
    hexagon = [(-0.5, -0.5), (9.5, -0.5), (39.5, 29.5), (39.5, 39.5), (29.5, 39.5), (-0.5, 9.5)]
    depth = np.array([[_depth((x, y), hexagon) for x in range(40)] for y in range(40)])
    assert mask[depth >= 1.0].all() and not mask[depth <= -1.0].any()
    assert mask[ys, xs].all() and mask[20, 20] and not mask[39, 0] and not mask[0, 39]


@pytest.mark.parametrize("name", ["qwen-test-1.png", "qwen-test-7.png"])
def test_real_illustrations_decompose_and_recompose(shared_dir, name):
    """Correctness only; the time these take is benchmarks/bench_classic.py's (vs a posterisation baseline)."""
    image = np.asarray(Image.open(shared_dir / "images" / name).convert("RGB"))
    stack = decompose_classic(image)
    assert 2 <= len(stack) <= 12
    assert not any(layer.is_empty for layer in stack)
    assert (stack.render_layer(0)[..., 3] == 255).all()
    assert psnr(stack.composite()[..., :3], image) >= 45.0  # measured 75-78 dB


def _gradient_with_shapes() -> tuple[np.ndarray, list[np.ndarray]]:
    """A diagonal two-colour gradient background (one surface, many palette bands) under two flat shapes."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    t = ((xx + yy) / 2)[..., None]
    background = np.concatenate(
        [(np.array([40, 90, 200]) * (1 - t) + np.array([230, 120, 170]) * t).round(), np.full((SIZE, SIZE, 1), 255)], 2
    )
    layers = [background.astype(np.uint8)]
    layers.append(_shape_layer("ellipse", (0.15, 0.15, 0.45, 0.45), (250, 220, 40, 255)))
    layers.append(_shape_layer("rectangle", (0.55, 0.50, 0.90, 0.85), (20, 20, 20, 255)))
    out = Image.new("RGBA", (SIZE, SIZE))
    for layer in layers:
        out = Image.alpha_composite(out, Image.fromarray(layer))
    return np.asarray(out)[..., :3].copy(), layers


@pytest.mark.parametrize("layers", [3, "auto"])
def test_a_gradient_background_is_one_plate_not_bands(layers):
    image, truth = _gradient_with_shapes()
    stack = decompose_classic(image, layers=layers)
    assert len(stack) == 3
    alphas = predicted_alphas(stack)
    assert (alphas[0] == 1.0).all()  # the whole gradient is the background plate
    for expected in truth[1:]:
        assert max(soft_iou(predicted, expected[..., 3] / 255.0) for predicted in alphas[1:]) > 0.95


def test_splitting_a_colour_keeps_words_whole():
    """Two words in one colour, three layers asked for: each word is one layer, not a glyph."""
    big = SIZE * SUPERSAMPLE
    from psd_pipeline import assets

    face = assets.font(assets.TEXT_FONTS["Liberation Sans"][1][1], big // 8)
    words = []
    for text, where in (("SALE", (0.08, 0.1)), ("TODAY", (0.35, 0.65))):
        canvas = Image.new("RGBA", (big, big), (200, 30, 60, 0))
        ImageDraw.Draw(canvas).text((where[0] * big, where[1] * big), text, font=face, fill=(200, 30, 60, 255))
        words.append(np.asarray(canvas.reduce(SUPERSAMPLE)))
    out = Image.new("RGBA", (SIZE, SIZE), (*BACKGROUND, 255))
    for word in words:
        out = Image.alpha_composite(out, Image.fromarray(word))
    stack = decompose_classic(np.asarray(out)[..., :3], layers=3)
    alphas = predicted_alphas(stack)
    assert len(stack) == 3
    best = [max(soft_iou(a, w[..., 3] / 255.0) for a in alphas[1:]) for w in words]
    assert min(best) > 0.9, best


@pytest.mark.parametrize("index", [4, 9, 10])
def test_layers_that_do_not_touch_go_larger_lower(index):
    """Adjacent output layers that share no pixel are in the convention's order: the larger one lower
    (on rich synthetic designs where the colour-group order alone put a smaller one lower)."""
    from psd_pipeline.synth_rich import draw_rich

    stack = decompose_classic(draw_rich(1000, index, 96).stack.composite(), layers="auto")
    renders = [stack.render_layer(i)[..., 3] for i in range(len(stack))]
    for lower, upper in zip(renders[1:-1], renders[2:], strict=True):
        if not ((lower > 0) & (upper > 0)).any():
            assert int(lower.sum()) >= int(upper.sum())
