"""Editor session state: history (undo/redo), opening uploads, refusing bad ones, exports read back independently."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from app_support import bad_uploads, design, write_design
from helpers import random_stack
from PIL import Image
from psd_tools import PSDImage

from layered import edits
from layered.app.session import EditorSession
from layered.errors import InputError
from layered.formats import write_stack


@pytest.fixture
def session(rng) -> EditorSession:
    s = EditorSession(max_history=5)
    stack = random_stack(rng, canvas=(40, 30), count=3)
    s.start(stack, stack.composite(), "doc")
    return s


def test_undo_redo_walks_history(session):
    s0 = session.stack
    s1 = session.edit(1, lambda st, i: edits.move(st, i, 3, 4))
    s2 = session.edit(2, edits.hide)
    assert session.stack is s2 and session.selected == 2
    assert session.undo() and session.stack is s1
    assert session.undo() and session.stack is s0
    assert not session.undo() and session.stack is s0  # nothing before the opened document
    assert session.redo() and session.stack is s1
    s3 = session.edit(0, edits.delete)  # a new edit drops the redo branch
    assert not session.redo() and session.stack is s3
    assert (s1.layers[1].x, s1.layers[1].y) == (s0.layers[1].x + 3, s0.layers[1].y + 4)


def test_history_is_capped(session):
    for k in range(10):
        session.edit(0, lambda st, i, k=k: edits.move_to(st, i, k, 0))
    assert len(session.history) == 5
    undone = 0
    while session.undo():
        undone += 1
    assert undone == 4 and session.stack.layers[0].x == 5  # the oldest kept step is move_to(5, 0)


def test_selection_follows_structure_and_clamps(session):
    session.edit(2, edits.delete, select=1)
    assert session.selected == 1
    session.select(99)
    assert session.selected == len(session.stack) - 1
    with pytest.raises(InputError, match="does not exist"):
        session.check_index(7)
    with pytest.raises(InputError, match="no layer selected"):
        session.check_index(None)
    with pytest.raises(InputError, match="whole number"):
        session.check_index(1.5)


def test_sessions_do_not_share_state(rng):
    a, b = EditorSession(), EditorSession()
    stack = random_stack(rng, count=2)
    a.start(stack, stack.composite(), "a")
    assert b.stack is None and b.history == [] and a.previews is not b.previews
    with pytest.raises(InputError, match="open an image"):
        b.require_stack()


@pytest.mark.parametrize("suffix", ["png", "webp", "jpg"])
def test_open_image_is_one_layer(tmp_path, suffix):
    pixels = design()
    pixels[:10, :, 3] = 0  # alpha survives PNG and WebP (lossless)
    path = tmp_path / f"in.{suffix}"
    image = Image.fromarray(pixels if suffix != "jpg" else pixels[..., :3])
    image.save(path, **({"lossless": True} if suffix == "webp" else {}))
    session = EditorSession()
    stack = session.open_file(path)
    assert len(stack) == 1 and stack.size == (pixels.shape[1], pixels.shape[0])
    expected = np.array(Image.open(path).convert("RGBA"))
    assert np.array_equal(session.original, expected)
    expected[expected[..., 3] == 0] = 0  # the composite has no colour under alpha 0
    assert np.array_equal(stack.composite(), expected)
    assert (stack.layers[0].x, stack.layers[0].y) == ((0, 10) if suffix != "jpg" else (0, 0))  # cropped to content
    assert session.name == "in"


def test_open_real_psd_gives_its_layers(shared_dir):
    path = shared_dir / "psd-corpus" / "2layers.psd"
    session = EditorSession()
    stack = session.open_file(path)
    psd = PSDImage.open(path)
    names = [layer.name for layer in psd.descendants() if not layer.is_group()]
    assert [layer.name for layer in stack.layers] == names
    assert np.array_equal(session.original, stack.composite())


@pytest.mark.parametrize("name", ["2layers.psb", "hidden-groups.psb"])
def test_open_real_psb_gives_its_layers(shared_dir, name):
    """The editor offers .psb (Photoshop's large-document format): opening one gives the layers psd-tools reads."""
    path = shared_dir / "psd-corpus" / name
    session = EditorSession()
    stack = session.open_file(path)
    psd = PSDImage.open(path)
    leaves = [layer for layer in psd.descendants() if not layer.is_group()]
    assert [layer.name for layer in stack.layers] == [leaf.name for leaf in leaves]
    assert [layer.visible for layer in stack.layers] == [leaf.is_visible() for leaf in leaves]
    assert stack.size == psd.size and session.name == path.stem
    assert np.array_equal(session.original, stack.composite())


def test_bad_uploads_keep_the_document(tmp_path, session):
    before = session.stack
    for kind, path in bad_uploads(tmp_path / "bad").items():
        with pytest.raises(InputError) as info:
            session.open_file(path)
        message = str(info.value)
        assert path.name in message and str(path.parent) not in message, (kind, message)
        assert session.stack is before and session.name == "doc"
    assert "larger than the limit" in _error(session, tmp_path / "bad" / "huge.png")


def _error(session, path) -> str:
    with pytest.raises(InputError) as info:
        session.open_file(path)
    return str(info.value)


def test_exports_read_back_with_independent_readers(session):
    session.edit(1, lambda st, i: edits.rename(st, i, "../evil/name"))
    stack = session.stack
    psd = PSDImage.open(session.export("psd"))
    assert [layer.name for layer in psd] == [layer.name for layer in stack.layers]
    assert [(layer.left, layer.top) for layer in psd] == [(layer.x, layer.y) for layer in stack.layers]
    png = session.export("png")
    assert png.name == "doc-composite.png"
    assert np.array_equal(np.asarray(Image.open(png).convert("RGBA")), stack.composite())
    with zipfile.ZipFile(session.export("zip")) as zf:
        names = zf.namelist()
    assert "layers.json" in names and "001_evil_name.png" in names  # file names from sanitised layer names
    assert all("/" not in n and ".." not in n for n in names)
    with zipfile.ZipFile(session.export("ora")) as zf:
        assert zf.read("mimetype") == b"image/openraster"
    pptx = pytest.importorskip("pptx")
    deck = pptx.Presentation(str(session.export("pptx")))
    assert len(list(deck.slides[0].shapes)) == len(stack)
    with pytest.raises(InputError, match="unknown export format"):
        session.export("exe")
    folder = session.export_dir()
    session.close()
    assert not folder.exists()


def test_empty_stack_cannot_be_exported(session):
    for _ in range(3):
        session.edit(0, edits.delete)
    with pytest.raises(InputError, match="no layers"):
        session.export("psd")


def test_open_written_psd_round_trip(tmp_path, rng):
    """A PSD we wrote opens with the same layers (so a designer can come back to an export)."""
    stack = random_stack(rng, canvas=(32, 24), count=3, off_canvas=False)
    path = write_stack(stack, tmp_path / "again.psd")
    session = EditorSession()
    opened = session.open_file(path)
    assert [(layer.x, layer.y, layer.name) for layer in opened] == [(layer.x, layer.y, layer.name) for layer in stack]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(opened, stack, strict=True))
    assert write_design(tmp_path).is_file()
