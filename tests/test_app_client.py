"""Every endpoint of the editor through `gradio_client` against a served app with a tiny model.

Edits are checked on the exported PSD with psd-tools (an independent reader) and against values computed
by hand or by colorsys; two clients are two browser sessions and must not see each other's layers.
"""

from __future__ import annotations

import colorsys
import threading
import time

import numpy as np
import pytest
from app_support import SHAPES, SIZE, bad_uploads, design, serve, write_design
from PIL import Image
from psd_tools import PSDImage

from layered.app import render

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from layered.app.ui import View  # noqa: E402

# A client gets a handler's View without its session (a gr.State stays on the server): positions by field name.
API_FIELDS = tuple(field for field in View._fields if field != "session")
CANVAS, PREVIEW, LAYER, VISIBLE, OPACITY, NAME, X, Y, INFO, STATUS, COMPARE = (
    API_FIELDS.index(field)
    for field in ("canvas", "preview", "layer", "visible", "opacity", "name", "x", "y", "info", "status", "compare")
)
CLASSIC = ("classic", "demo", "auto", 50, 0, 4.0, 0, "")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tiny_pipeline import make_tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def url(model_dir):
    demo, address = serve(model=str(model_dir))
    yield address
    demo.close()


@pytest.fixture
def client(url):
    return Client(url, verbose=False)


@pytest.fixture
def decomposed(client, tmp_path):
    """A session holding the classic decomposition of the known design: background, red, blue, green."""
    client.predict(handle_file(str(write_design(tmp_path))), api_name="/open")
    out = client.predict(*CLASSIC, api_name="/decompose")
    assert len(out[INFO]["layers"]) == 4, out[STATUS]
    return client


def layers(out) -> list[dict]:
    return out[INFO]["layers"]


def exported_psd(client) -> PSDImage:
    path, status = client.predict("psd", api_name="/export")
    assert path and "Exported" in status, status
    return PSDImage.open(path)


def colour_of(psd_layer) -> tuple:
    pixels = np.asarray(psd_layer.topil().convert("RGBA"))
    opaque = pixels[pixels[..., 3] == 255]
    return tuple(int(v) for v in np.median(opaque[:, :3], axis=0))


def test_every_endpoint_is_exposed(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {
        "refresh", "open", "decompose", "decompose_layer", "cancel", "select", "set_visible", "set_opacity",
        "move", "scale", "rotate", "recolor", "rename", "raise_layer", "lower_layer", "duplicate", "delete",
        "merge_down", "replace", "undo", "redo", "compare", "export",
    }  # fmt: skip
    assert {f"/{n}" for n in expected} <= names


def test_open_decompose_preview(client, tmp_path):
    out = client.predict(api_name="/refresh")
    assert out[INFO]["layers"] == [] and out[PREVIEW] is None
    out = client.predict(handle_file(str(write_design(tmp_path))), api_name="/open")
    assert len(layers(out)) == 1 and "192 x 192" in out[STATUS]
    out = client.predict(*CLASSIC, api_name="/decompose")
    assert [layer["name"].split(" #")[0] for layer in layers(out)] == [
        "background",
        "element 1",
        "element 2",
        "element 3",
    ]
    assert out[LAYER]["value"] == 3 and [c[1] for c in out[LAYER]["choices"]] == [3, 2, 1, 0]  # top-first panel
    assert len(out[CANVAS]["layers"]) == 4 and len(out[INFO]["layers"]) == 4
    preview = np.asarray(Image.open(out[PREVIEW]).convert("RGB"), dtype=float)  # JPEG: compare loosely
    assert preview.shape == (SIZE[1], SIZE[0], 3) and np.abs(preview - design()[..., :3]).mean() < 2.0
    psd = exported_psd(client)
    rendered = np.asarray(psd.composite(force=True).convert("RGBA")).astype(int)
    assert np.abs(rendered - design()).max() <= 1  # psd-tools' own render of our layers = the input


def test_layer_property_edits(decomposed):
    c = decomposed
    out = c.predict(1, False, api_name="/set_visible")
    assert layers(out)[1]["visible"] is False and out[VISIBLE] is False
    out = c.predict(2, 0.5, api_name="/set_opacity")
    assert layers(out)[2]["opacity"] == 0.5
    out = c.predict(3, 10, 12, api_name="/move")
    assert (layers(out)[3]["x"], layers(out)[3]["y"]) == (10, 12) and (out[X], out[Y]) == (10, 12)
    out = c.predict(2, 180, 1.0, 1.0, api_name="/recolor")
    out = c.predict(1, "Sun / ../x", api_name="/rename")
    assert out[NAME] == "Sun / ../x"
    out = c.predict(2, api_name="/select")
    assert out[NAME].startswith("element 2") and out[LAYER]["value"] == 2
    psd = exported_psd(c)
    found = list(psd)
    assert [layer.visible for layer in found] == [True, False, True, True]
    assert found[2].opacity == 128 and found[1].name == "Sun / ../x"
    assert (found[3].left, found[3].top) == (10, 12)
    r, g, b = (v / 255 for v in SHAPES["blue"][0])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    expected = colorsys.hsv_to_rgb((h + 0.5) % 1.0, s, v)
    assert np.abs(np.array(colour_of(found[2])) - np.array(expected) * 255).max() <= 1
    assert colour_of(found[3]) == SHAPES["green"][0]


def test_geometry_edits(decomposed):
    c = decomposed
    green = layers(c.predict(api_name="/refresh"))[3]
    out = c.predict(3, 2.0, api_name="/scale")
    scaled = layers(out)[3]
    assert (scaled["width"], scaled["height"]) == (2 * green["width"], 2 * green["height"])
    centre = (green["x"] + green["width"] / 2, green["y"] + green["height"] / 2)
    assert (
        abs(scaled["x"] + scaled["width"] / 2 - centre[0]) <= 1
        and abs(scaled["y"] + scaled["height"] / 2 - centre[1]) <= 1
    )
    out = c.predict(3, 90, api_name="/rotate")
    turned = layers(out)[3]
    assert (turned["width"], turned["height"]) == (scaled["height"], scaled["width"])
    psd = exported_psd(c)
    assert (psd[3].width, psd[3].height) == (turned["width"], turned["height"])


def test_structure_edits_and_history(decomposed, tmp_path):
    c = decomposed
    base = layers(c.predict(api_name="/refresh"))
    names = [layer["name"] for layer in base]
    out = c.predict(3, api_name="/lower_layer")
    assert [layer["name"] for layer in layers(out)] == [names[0], names[1], names[3], names[2]] and out[LAYER][
        "value"
    ] == 2
    out = c.predict(2, api_name="/raise_layer")
    assert [layer["name"] for layer in layers(out)] == names and out[LAYER]["value"] == 3
    out = c.predict(3, api_name="/raise_layer")
    assert "already at the top" in out[STATUS]
    out = c.predict(1, api_name="/duplicate")
    assert [layer["name"] for layer in layers(out)][1:3] == [names[1], names[1] + " copy"] and out[LAYER]["value"] == 2
    out = c.predict(2, api_name="/delete")
    assert [layer["name"] for layer in layers(out)] == names
    before_merge = np.asarray(exported_psd(c).composite(force=True).convert("RGBA")).astype(int)
    out = c.predict(3, api_name="/merge_down")
    assert len(layers(out)) == 3 and layers(out)[2]["name"] == names[2]
    after_merge = np.asarray(exported_psd(c).composite(force=True).convert("RGBA")).astype(int)
    assert np.abs(after_merge - before_merge).max() <= 1  # merging does not change the picture
    sticker = np.zeros((20, 30, 4), np.uint8)
    sticker[...] = (250, 200, 0, 255)
    Image.fromarray(sticker).save(tmp_path / "sticker.png")
    old = layers(out)[1]
    out = c.predict(1, handle_file(str(tmp_path / "sticker.png")), api_name="/replace")
    new = layers(out)[1]
    assert (new["width"], new["height"]) == (30, 20) and new["name"] == old["name"]
    assert new["x"] == old["x"] + (old["width"] - 30) // 2 and new["y"] == old["y"] + (old["height"] - 20) // 2
    assert colour_of(exported_psd(c)[1]) == (250, 200, 0)
    out = c.predict(api_name="/undo")
    assert layers(out)[1] == old and out[INFO]["can_redo"]
    out = c.predict(api_name="/redo")
    assert layers(out)[1] == new
    for _ in range(20):
        out = c.predict(api_name="/undo")
    assert len(layers(out)) == 1 and "Nothing to undo" in out[STATUS]  # back to the opened image


def test_before_after_toggle(decomposed):
    c = decomposed
    c.predict(3, False, api_name="/set_visible")
    after = np.asarray(Image.open(c.predict("edited", api_name="/compare")[PREVIEW]).convert("RGB"), dtype=float)
    out = c.predict("original", api_name="/compare")
    assert out[COMPARE] == "original"
    before = np.asarray(Image.open(out[PREVIEW]).convert("RGB"), dtype=float)
    green = SHAPES["green"][1]
    patch = (slice(green[1] + 5, green[3] - 5), slice(green[0] + 5, green[2] - 5))
    assert np.abs(before[patch] - SHAPES["green"][0]).mean() < 4  # the original still shows the green shape
    assert np.abs(after[patch] - 255).mean() < 4  # hidden: the white background shows
    out = c.predict(0, 10, 10, api_name="/move")  # an edit shows the edited picture again
    assert out[COMPARE] == "edited"


def test_classic_decompose_layer_further(decomposed):
    c = decomposed
    whole = np.asarray(exported_psd(c).composite(force=True).convert("RGBA")).astype(int)
    out = c.predict(3, api_name="/merge_down")
    out = c.predict(2, api_name="/merge_down")  # red + blue + green in one layer
    assert len(layers(out)) == 2
    out = c.predict(1, *CLASSIC, api_name="/decompose_layer")
    parts = layers(out)[1:]
    assert len(parts) >= 3 and all(p["name"].startswith(layers(out)[1]["name"].split(" / ")[0]) for p in parts)
    assert layers(out)[0]["name"] == "background"
    split = np.asarray(exported_psd(c).composite(force=True).convert("RGBA")).astype(int)
    assert np.abs(split - whole).mean() < 1.0


def test_model_decomposition_and_cancel(client, tmp_path, model_dir):
    client.predict(handle_file(str(write_design(tmp_path))), api_name="/open")
    settings = ("model", str(model_dir), "2", 2, 0, 4.0, 32, "")  # 1 step: NaN from the scheduler's terminal shift
    out = client.predict(*settings, api_name="/decompose")
    assert len(layers(out)) == 2 and "model" in out[STATUS], out[STATUS]
    assert all(layer["width"] <= SIZE[0] and layer["height"] <= SIZE[1] for layer in layers(out))
    top = layers(out)[1]
    out = client.predict(0, *settings, api_name="/decompose_layer")
    assert 1 <= len(layers(out)) <= 3 and "Split layer 0" in out[STATUS], out[STATUS]
    untouched = {k: v for k, v in top.items() if k != "index"}
    assert {k: v for k, v in layers(out)[-1].items() if k != "index"} == untouched  # the layer above is kept
    count = len(layers(out))
    job = client.submit("model", str(model_dir), "2", 100, 0, 1.0, 32, "", api_name="/decompose")
    deadline = time.time() + 60

    def denoising() -> bool:  # the progress bar's text once the model runs
        return any("denoising step" in (unit.desc or "") for unit in job.status().progress_data or [])

    while time.time() < deadline and not denoising():
        time.sleep(0.1)
    assert denoising()
    started = time.time()
    assert client.predict(api_name="/cancel") == "Cancelling..."
    result = job.result(timeout=60)
    assert time.time() - started < 20  # 100 steps would take minutes
    assert "cancelled" in result[STATUS] and len(layers(result)) == count


def test_bad_input_is_reported_and_layers_kept(decomposed, tmp_path):
    c = decomposed
    before = layers(c.predict(api_name="/refresh"))
    for kind, path in bad_uploads(tmp_path / "bad").items():
        out = c.predict(handle_file(str(path)), api_name="/open")
        assert out[STATUS].startswith("**Error:**") and path.name in out[STATUS], (kind, out[STATUS])
        assert layers(out) == before
    bad_calls = [
        ((1, 0.0), "/scale", "positive"),
        ((1, ""), "/rename", "cannot be empty"),
        ((0,), "/merge_down", "bottom layer"),
        (("classic", "demo", "many", 50, 0, 4.0, 0, ""), "/decompose", "layers must be"),
        (("model", "no/such-model", "2", 2, 0, 4.0, 64, ""), "/decompose", "model"),
        ((1, handle_file(str(tmp_path / "bad" / "truncated.png"))), "/replace", "truncated.png"),
    ]
    for args, api, words in bad_calls:
        out = c.predict(*args, api_name=api)
        assert out[STATUS].startswith("**Error:**") and words in out[STATUS], (api, out[STATUS])
        assert layers(out) == before
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks the session's choices
        c.predict(99, 0, 0, api_name="/move")
    with pytest.raises(AppError, match="not in the list of choices"):
        c.predict("exe", api_name="/export")
    with pytest.raises(AppError, match="less than minimum value 2"):  # one denoising step has no schedule
        c.predict("model", "demo", "2", 1, 0, 4.0, 64, "", api_name="/decompose")
    assert len(layers(c.predict(1, True, api_name="/set_visible"))) == 4  # still serving this session


def test_sessions_are_isolated(url, tmp_path):
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(handle_file(str(write_design(tmp_path))), api_name="/open")
    a.predict(*CLASSIC, api_name="/decompose")
    assert b.predict(api_name="/refresh")[INFO]["layers"] == []
    other = np.zeros((40, 50, 4), np.uint8)
    other[..., 1:] = 255
    Image.fromarray(other).save(tmp_path / "other.png")
    b.predict(handle_file(str(tmp_path / "other.png")), api_name="/open")

    def hammer(client, index, offset):
        for k in range(5):
            client.predict(index, offset + k, offset + k, api_name="/move")

    threads = [threading.Thread(target=hammer, args=(a, 2, 100)), threading.Thread(target=hammer, args=(b, 0, 7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info_a, info_b = a.predict(api_name="/refresh")[INFO], b.predict(api_name="/refresh")[INFO]
    assert (info_a["width"], len(info_a["layers"]), info_a["layers"][2]["x"]) == (SIZE[0], 4, 104)
    assert (info_b["width"], len(info_b["layers"]), info_b["layers"][0]["x"]) == (50, 1, 11)
    assert len(list(exported_psd(b))) == 1 and len(list(exported_psd(a))) == 4
    b.predict(api_name="/undo")
    assert a.predict(api_name="/refresh")[INFO] == info_a


def test_preview_is_the_composite_over_a_checkerboard(decomposed):
    out = decomposed.predict(0, False, api_name="/set_visible")  # background hidden: transparency shows
    preview = np.asarray(Image.open(out[PREVIEW]).convert("RGB"), dtype=float)
    composite = np.asarray(exported_psd(decomposed).composite(force=True).convert("RGBA"))
    assert np.abs(preview - render.on_checkerboard(composite)).mean() < 2.0
