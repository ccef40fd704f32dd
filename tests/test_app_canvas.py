"""The canvas and its layer panel in a real browser (Debian's chromium driven by Playwright).

The document is a PSD of two layers on a transparent canvas: "under", a red square, and "top", a ring whose
upper half is blue and lower half yellow, with a transparent hole over the square. What the page does is
checked in the PSD the editor exports (psd-tools reads it) and, between steps, in the document the server
sends back (`window.layeredEditor.doc`, the server's stack as plain data).
"""

from __future__ import annotations

import numpy as np
import pytest
from app_support import TIMEOUT_MS, export_psd, open_editor, panel_rows, serve, shot, upload, wait_status

from layered.formats import write_stack
from layered.stack import Layer, LayerStack

WIDTH, HEIGHT = 200, 160
UNDER = (40, 40, 60)  # x, y, side of the red square
TOP = (30, 30, 80)  # x, y, side of the ring
HOLE = (25, 55)  # the ring's hole, in the ring's own pixels: rows/columns 25..54


def ring() -> np.ndarray:
    side = TOP[2]
    pixels = np.zeros((side, side, 4), np.uint8)
    pixels[: side // 2] = (40, 70, 220, 255)
    pixels[side // 2 :] = (240, 200, 20, 255)
    pixels[HOLE[0] : HOLE[1], HOLE[0] : HOLE[1]] = 0
    return pixels


def document() -> LayerStack:
    square = np.zeros((UNDER[2], UNDER[2], 4), np.uint8)
    square[:] = (220, 40, 40, 255)
    return LayerStack(
        WIDTH,
        HEIGHT,
        (Layer(square, UNDER[0], UNDER[1], name="under"), Layer(ring(), TOP[0], TOP[1], name="top")),
    )


@pytest.fixture(scope="module")
def url():
    demo, address = serve()
    yield address
    demo.close()


@pytest.fixture
def page(browser, url, tmp_path):
    path = write_stack(document(), tmp_path / "two.psd", "psd")
    context, page = open_editor(browser, url)
    upload(page, path)
    wait_status(page, "Opened two.psd")
    page.wait_for_function("() => document.querySelectorAll('#layer-canvas img.le-layer').length === 2")
    yield page
    context.close()


def state(page) -> dict:
    """The newest document the server sent: {width, height, layers: [{x, y, width, ...}], selected, ...}."""
    return page.evaluate("() => window.layeredEditor.doc")


def zoom(page) -> float:
    value = float(page.get_attribute("#layer-canvas", "data-zoom"))
    assert abs(value - 1) > 0.25  # the tests mean to work at a zoom other than 1
    return value


def screen(page, x: float, y: float) -> tuple[float, float]:
    """The page coordinates of image pixel (x, y)'s centre."""
    box = page.locator("#layer-canvas .le-board").bounding_box()
    z = zoom(page)
    return box["x"] + (x + 0.5) * z, box["y"] + (y + 0.5) * z


def answered(page, action) -> dict:
    """Run `action()` (a gesture that sends one edit) and wait for the server's next document."""
    version = page.evaluate("() => window.layeredEditor.version")
    action()
    page.wait_for_function("v => window.layeredEditor.version > v", arg=version, timeout=TIMEOUT_MS)
    return state(page)


def key(page, combo: str) -> None:
    """Press `combo` with the canvas focused (the shortcuts are the canvas's)."""
    page.focus("#layer-canvas")
    page.keyboard.press(combo)


def click_image(page, x: float, y: float) -> dict:
    return answered(page, lambda: page.mouse.click(*screen(page, x, y)))


def drag(page, start: tuple[float, float], by: tuple[float, float], steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + by[0], start[1] + by[1], steps=steps)
    page.mouse.up()


def psd_layers(page, tmp_path) -> dict:
    return {layer.name: layer for layer in export_psd(page, tmp_path / f"export{len(list(tmp_path.iterdir()))}")}


def test_click_selects_the_layer_visible_there(page):
    assert click_image(page, TOP[0] + 3, TOP[1] + 3)["selected"] == 1  # the ring, over nothing
    inside_hole = TOP[0] + (HOLE[0] + HOLE[1]) // 2
    assert click_image(page, inside_hole, inside_hole)["selected"] == 0  # through the hole: the square
    assert click_image(page, UNDER[0] + 55, UNDER[1] + 55)["selected"] == 1  # the ring covers the square
    assert page.locator("#layer-panel .le-row.selected").get_attribute("data-layer-index") == "1"
    assert page.input_value("#layer input").startswith("1:")  # the side panel shows the same selection
    assert click_image(page, 180, 150)["selected"] is None  # empty canvas clears the selection
    assert page.locator("#layer-panel .le-row.selected").count() == 0


def test_drag_moves_one_layer_by_the_pointer_over_the_zoom(page, tmp_path):
    z = zoom(page)
    dx, dy = 57, -23  # screen pixels
    answered(page, lambda: drag(page, screen(page, TOP[0] + 5, TOP[1] + 70), (dx, dy)))
    status = page.inner_text("#status")
    expected = (TOP[0] + round(dx / z), TOP[1] + round(dy / z))
    assert f"Moved layer 1 by ({round(dx / z)}, {round(dy / z)})" in status
    layers = psd_layers(page, tmp_path)
    assert (layers["top"].left, layers["top"].top) == expected
    assert (layers["under"].left, layers["under"].top) == UNDER[:2]  # no other layer changes
    assert np.array_equal(np.asarray(layers["top"].topil().convert("RGBA")), ring())
    answered(page, lambda: key(page, "Control+z"))
    wait_status(page, "Undone.")
    assert (state(page)["layers"][1]["x"], state(page)["layers"][1]["y"]) == TOP[:2]
    layers = psd_layers(page, tmp_path)
    assert (layers["top"].left, layers["top"].top) == TOP[:2]
    shot(page, "editor-canvas-drag.png")


def test_drag_on_a_hole_moves_the_layer_beneath(page):
    centre = TOP[0] + (HOLE[0] + HOLE[1]) // 2
    after = answered(page, lambda: drag(page, screen(page, centre, centre), (40, 0)))
    moved = round(40 / zoom(page))
    assert after["layers"][0]["x"] == UNDER[0] + moved and after["layers"][1]["x"] == TOP[0]


def test_reordering_rows_in_the_panel_changes_the_stack(page, tmp_path):
    assert [row.get_attribute("data-layer-index") for row in page.locator("#layer-panel .le-row").all()] == ["1", "0"]
    bottom = page.locator("#layer-panel .le-row[data-layer-index='0'] .le-meta").bounding_box()
    top = page.locator("#layer-panel .le-row[data-layer-index='1'] .le-meta").bounding_box()
    start = (bottom["x"] + 10, bottom["y"] + bottom["height"] / 2)
    answered(page, lambda: drag(page, start, (0, top["y"] - bottom["y"])))
    wait_status(page, "Moved layer 0 to position 1")
    assert [layer.name for layer in export_psd(page, tmp_path)] == ["top", "under"]
    assert [row.inner_text().split("\n")[-1] for row in page.locator("#layer-panel .le-name").all()] == ["under", "top"]
    answered(page, lambda: page.click("#undo"))
    assert [item["name"] for item in state(page)["layers"]] == ["under", "top"]


def test_corner_handle_scales_and_undoes_in_one_step(page):
    click_image(page, TOP[0] + 3, TOP[1] + 3)
    handle = page.locator("#layer-canvas .le-handle.le-se").bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    z = zoom(page)
    answered(page, lambda: drag(page, start, (30, 12)))
    item = state(page)["layers"][1]
    assert "Scaled layer 1 to" in page.inner_text("#status")
    # the opposite corner stays put; each side follows the pointer (free aspect without Shift)
    assert abs(item["x"] - TOP[0]) <= 1 and abs(item["y"] - TOP[1]) <= 1
    assert abs(item["width"] - (TOP[2] + 30 / z)) <= 1.5 and abs(item["height"] - (TOP[2] + 12 / z)) <= 1.5
    answered(page, lambda: key(page, "Control+z"))
    assert [state(page)["layers"][1][k] for k in ("x", "y", "width", "height")] == [*TOP[:2], TOP[2], TOP[2]]
    key(page, "Control+Shift+z")
    page.wait_for_function("() => window.layeredEditor.doc.layers[1].width !== 80")
    assert state(page)["layers"][1]["width"] == item["width"]


def test_shift_corner_keeps_the_aspect_ratio(page):
    click_image(page, TOP[0] + 3, TOP[1] + 3)
    handle = page.locator("#layer-canvas .le-handle.le-nw").bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.keyboard.down("Shift")
    answered(page, lambda: drag(page, start, (-30, -5)))
    page.keyboard.up("Shift")
    item = state(page)["layers"][1]
    assert item["width"] == item["height"] > TOP[2]
    assert abs(item["x"] + item["width"] - (TOP[0] + TOP[2])) <= 1  # the opposite (south-east) corner stays


def test_rotate_handle_turns_the_layer(page, tmp_path):
    click_image(page, TOP[0] + 3, TOP[1] + 3)
    handle = page.locator("#layer-canvas .le-handle.le-rot").bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    centre = screen(page, TOP[0] + TOP[2] / 2 - 0.5, TOP[1] + TOP[2] / 2 - 0.5)
    radius = centre[1] - start[1]
    page.keyboard.down("Shift")  # snaps to 15 degrees: a quarter turn, clockwise on screen
    answered(page, lambda: drag(page, start, (centre[0] + radius - start[0], centre[1] - start[1]), steps=12))
    page.keyboard.up("Shift")
    assert "Rotated layer 1 by -90°" in page.inner_text("#status")
    pixels = np.asarray(psd_layers(page, tmp_path)["top"].topil().convert("RGBA"))
    assert np.array_equal(pixels, np.rot90(ring(), k=-1))  # the blue half is now on the right
    answered(page, lambda: key(page, "Control+z"))
    assert np.array_equal(np.asarray(psd_layers(page, tmp_path)["top"].topil().convert("RGBA")), ring())


def test_keyboard_shortcuts_each_do_one_edit(page):
    click_image(page, TOP[0] + 3, TOP[1] + 3)
    assert answered(page, lambda: key(page, "ArrowRight"))["layers"][1]["x"] == TOP[0] + 1
    assert answered(page, lambda: key(page, "Shift+ArrowDown"))["layers"][1]["y"] == TOP[1] + 10
    assert answered(page, lambda: key(page, "ArrowUp"))["layers"][1]["y"] == TOP[1] + 9
    doc = answered(page, lambda: key(page, "Control+d"))
    assert [item["name"] for item in doc["layers"]] == ["under", "top", "top copy"] and doc["selected"] == 2
    doc = answered(page, lambda: key(page, "Delete"))
    assert [item["name"] for item in doc["layers"]] == ["under", "top"]
    doc = answered(page, lambda: key(page, "h"))
    assert not doc["layers"][doc["selected"]]["visible"]
    doc = answered(page, lambda: key(page, "Control+z"))
    assert doc["layers"][1]["visible"] and len(doc["layers"]) == 2
    doc = answered(page, lambda: key(page, "Control+y"))
    assert not doc["layers"][1]["visible"]
    for _ in range(5):  # back through hide, delete, duplicate, the nudges, one step each
        doc = answered(page, lambda: key(page, "Control+z"))
    assert (doc["layers"][1]["x"], doc["layers"][1]["y"], len(doc["layers"])) == (TOP[0] + 1, TOP[1], 2)
    doc = answered(page, lambda: key(page, "Escape"))
    assert doc["selected"] is None and page.locator("#layer-canvas .le-box").is_hidden()


def test_panel_eye_opacity_and_rename(page):
    doc = answered(page, lambda: page.click("#layer-panel .le-row[data-layer-index='0'] .le-eye"))
    assert not doc["layers"][0]["visible"]
    assert page.locator("#layer-canvas img[data-layer-index='0']").is_hidden()
    slider = page.locator("#layer-panel .le-row[data-layer-index='1'] .le-opacity")
    doc = answered(page, lambda: slider.fill("40"))
    assert doc["layers"][1]["opacity"] == pytest.approx(0.4)
    page.dblclick("#layer-panel .le-row[data-layer-index='1'] .le-name")
    field = page.locator("#layer-panel .le-rename")
    field.fill("ring")
    doc = answered(page, lambda: field.press("Enter"))
    assert doc["layers"][1]["name"] == "ring" and "Renamed layer 1 to 'ring'" in page.inner_text("#status")
    assert panel_rows(page) == 2


def test_before_after_and_split_again(page):
    page.click(".le-before")
    page.wait_for_selector("#layer-canvas img.le-original")
    assert page.locator("#layer-canvas img.le-layer").count() == 0
    page.click(".le-before")
    page.wait_for_selector("#layer-canvas img.le-layer")
    click_image(page, TOP[0] + 3, TOP[1] + 3)
    page.locator("#method label", has_text="classic").click()
    page.click("#split")
    status = wait_status(page, "Split layer 1 into")
    parts = int(status.split("into ")[1].split()[0])
    assert parts >= 2 and panel_rows(page) == 1 + parts  # the blue and the yellow half at least


# ---- without a browser: what the server sends and how it takes the canvas's events


class Event:
    """What Gradio hands a custom event's handler: the data the page's `trigger` sent."""

    def __init__(self, data):
        self._data = data


def opened_session():
    from layered.app.session import EditorSession

    session = EditorSession()
    stack = document()
    session.start(stack, stack.composite(), "two")
    return session


def test_canvas_value_sends_each_preview_once():
    from layered.app.canvas import canvas_value
    from layered.app.ui import canvas_edit

    session = opened_session()
    first = canvas_value(session)
    ids = [item["image"] for item in first["layers"]]
    assert set(first["images"]) == {*ids, first["original"]} and len(set(ids)) == 2
    moved = canvas_edit(session, Event({"op": "move", "index": 1, "dx": 5, "dy": -3})).canvas
    assert moved["images"] == {} and [item["image"] for item in moved["layers"]] == ids  # a move sends no pixels
    assert (moved["layers"][1]["x"], moved["layers"][1]["y"]) == (TOP[0] + 5, TOP[1] - 3)
    assert moved["version"] > first["version"]
    turned = canvas_edit(session, Event({"op": "rotate", "index": 1, "degrees": 90})).canvas
    assert list(turned["images"]) == [turned["layers"][1]["image"]] and turned["layers"][0]["image"] == ids[0]


def test_canvas_edit_refuses_bad_events_and_keeps_the_layers():
    from layered.app.ui import canvas_edit

    session = opened_session()
    before = session.stack
    for data in ({"op": "explode"}, {"op": "move", "index": 7, "dx": 1, "dy": 0}, {"op": "move", "index": 1},
                 {"op": "scale", "index": 1, "sx": 0, "sy": 1, "ax": 0, "ay": 0}, None):  # fmt: skip
        out = canvas_edit(session, Event(data))
        assert out.status.startswith("**Error:**") and session.stack is before
