"""OpenRaster: the archive layout checked with zipfile/ElementTree/PIL, and hostile or foreign archives."""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib

import numpy as np
import pytest
from helpers import random_stack
from PIL import Image

from layered.errors import InputError
from layered.formats import read_stack, write_stack
from layered.stack import Layer, LayerStack


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def make_ora(path, stack_xml: str, files: dict[str, bytes], mimetype: bytes = b"image/openraster") -> None:
    """An ORA written by hand, the way another application would."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", stack_xml)
        for name, data in files.items():
            zf.writestr(name, data)


@pytest.fixture
def stack() -> LayerStack:
    stack = random_stack(np.random.default_rng(3), canvas=(600, 300), count=4)
    layers = list(stack.layers)
    layers[1] = layers[1].replace(visible=False, name='quote " & <tag>')
    return stack.replace(layers=tuple(layers))


def test_archive_layout(tmp_path, stack):
    path = write_stack(stack, tmp_path / "out.ora")
    with zipfile.ZipFile(path) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"image/openraster"
        with open(path, "rb") as f:  # readers sniff the type at a fixed offset
            assert f.read(30 + 8 + 16)[30:] == b"mimetypeimage/openraster"
        image = ET.fromstring(zf.read("stack.xml"))
        assert (image.get("w"), image.get("h")) == ("600", "300")
        elements = image.find("stack").findall("layer")
        top_first = list(reversed(stack.layers))
        assert [e.get("name") for e in elements] == [layer.name for layer in top_first]
        for element, layer in zip(elements, top_first, strict=True):
            assert (int(element.get("x")), int(element.get("y"))) == (layer.x, layer.y)
            assert float(element.get("opacity")) == layer.opacity
            assert element.get("visibility") == ("visible" if layer.visible else "hidden")
            assert element.get("src").startswith("data/") and element.get("src").endswith(".png")
            assert np.array_equal(decode(zf.read(element.get("src"))), layer.pixels)
        assert np.array_equal(decode(zf.read("mergedimage.png")), stack.composite())
        thumbnail = decode(zf.read("Thumbnails/thumbnail.png"))
        assert thumbnail.shape[:2] == (128, 256)


def test_thumbnail_of_a_small_canvas_is_not_enlarged(tmp_path):
    stack = LayerStack(40, 30, (Layer(np.full((5, 5, 4), 200, np.uint8), 1, 1, "a"),))
    with zipfile.ZipFile(write_stack(stack, tmp_path / "small.ora")) as zf:
        assert np.array_equal(decode(zf.read("Thumbnails/thumbnail.png")), stack.composite())


def test_reads_a_foreign_ora_with_nested_stacks(tmp_path):
    """Top-first order becomes bottom-first; a nested stack's offset, opacity and visibility fold in."""
    red = np.zeros((2, 3, 4), np.uint8)
    red[...] = (255, 0, 0, 255)
    blue = np.zeros((4, 1, 4), np.uint8)
    blue[...] = (0, 0, 255, 128)
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<image version="0.0.3" w="20" h="10"><stack>
  <stack name="group" x="5" y="1" opacity="0.5" visibility="hidden">
    <layer name="top" src="data/b.png" x="2" y="3" opacity="0.5"/>
  </stack>
  <layer name="middle" src="data/a.png" x="-1" y="4"/>
  <layer name="bottom" src="data/b.png" visibility="hidden"/>
</stack></image>"""
    path = tmp_path / "foreign.ora"
    make_ora(path, xml, {"data/a.png": png(red), "data/b.png": png(blue)})
    got = read_stack(path)
    assert got.size == (20, 10)
    assert [layer.name for layer in got] == ["bottom", "middle", "top"]
    assert [(layer.x, layer.y) for layer in got] == [(0, 0), (-1, 4), (7, 4)]
    assert [layer.opacity for layer in got] == [1.0, 1.0, 0.25]
    assert [layer.visible for layer in got] == [False, True, False]
    assert np.array_equal(got[1].pixels, red) and np.array_equal(got[2].pixels, blue)


@pytest.mark.parametrize("src", ["../evil.png", "/etc/evil.png", "data/missing.png", "data/notes.txt"])
def test_layer_sources_must_be_pngs_inside_the_archive(tmp_path, src):
    xml = f'<image w="4" h="4"><stack><layer name="x" src="{src}"/></stack></image>'
    path = tmp_path / "hostile.ora"
    make_ora(path, xml, {"data/notes.txt": b"hello", "data/ok.png": png(np.zeros((1, 1, 4), np.uint8))})
    with pytest.raises(InputError, match="not a PNG inside the archive"):
        read_stack(path)
    assert not (tmp_path / "evil.png").exists()


def test_zip_member_escaping_the_folder_is_refused(tmp_path):
    """Even when the archive really holds a member named ../x.png, it is never written outside."""
    xml = '<image w="4" h="4"><stack><layer name="x" src="../x.png"/></stack></image>'
    path = tmp_path / "slip.ora"
    make_ora(path, xml, {"../x.png": png(np.zeros((1, 1, 4), np.uint8))})
    with pytest.raises(InputError, match="outside"):
        read_stack(path)


def test_png_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 9000, 9000, 8, 6, 0, 0, 0))
    huge += chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")  # 324 MB if it were decoded
    xml = '<image w="4" h="4"><stack><layer name="x" src="data/huge.png"/></stack></image>'
    path = tmp_path / "bomb.ora"
    make_ora(path, xml, {"data/huge.png": huge})
    with pytest.raises(InputError, match="larger than the limit"):
        read_stack(path)


@pytest.mark.parametrize(
    "case",
    ["not a zip", "wrong mimetype", "no stack.xml", "malformed xml", "no size", "truncated png"],
)
def test_bad_archives_are_input_errors(tmp_path, case):
    path = tmp_path / "bad.ora"
    good_png = png(np.full((2, 2, 4), 9, np.uint8))
    xml = '<image w="4" h="4"><stack><layer name="x" src="data/a.png"/></stack></image>'
    if case == "not a zip":
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif case == "wrong mimetype":
        make_ora(path, xml, {"data/a.png": good_png}, mimetype=b"application/zip")
    elif case == "no stack.xml":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("mimetype", "image/openraster")
    elif case == "malformed xml":
        make_ora(path, "<image w='4' h='4'><stack>", {})
    elif case == "no size":
        make_ora(path, '<image><stack><layer src="data/a.png"/></stack></image>', {"data/a.png": good_png})
    elif case == "truncated png":
        make_ora(path, xml, {"data/a.png": good_png[: len(good_png) // 2]})
    with pytest.raises(InputError) as info:
        read_stack(path)
    assert "\n" not in str(info.value)


def test_control_characters_in_names_do_not_break_stack_xml(tmp_path):
    stack = LayerStack(4, 4, (Layer(np.full((2, 2, 4), 255, np.uint8), 0, 0, "bell\x07 tab\t é 🎨"),))
    assert read_stack(write_stack(stack, tmp_path / "names.ora"))[0].name == "bell tab\t é 🎨"
