"""PSD header parsing and the size limit that is checked before anything is allocated."""

from __future__ import annotations

import struct

import pytest

from layered.psd import extract as extract_module
from layered.psd.errors import Rejected
from layered.psd.header import check_header, read_header

CORPUS_SAMPLES = ["1layer.psd", "2layers.psb", "32bit5x5.psd", "gray1.psd", "colormodes/4x4_8bit_cmyk.psd"]


def _header(width: int, height: int, version: int = 1, depth: int = 8, mode: int = 3) -> bytes:
    return struct.pack(">4sH6sHIIHH", b"8BPS", version, b"\0" * 6, 4, height, width, depth, mode)


@pytest.mark.parametrize("name", CORPUS_SAMPLES)
def test_header_matches_psd_tools(shared_dir, name):
    from psd_tools import PSDImage

    path = shared_dir / "psd-corpus" / name
    header = read_header(path)
    psd = PSDImage.open(path)
    assert (header.width, header.height, header.depth, header.version) == (
        psd.width,
        psd.height,
        psd.depth,
        psd.version,
    )
    assert header.color_mode == psd.color_mode.name.lower()


def test_huge_declared_size_is_refused_before_psd_tools_reads(tmp_path, monkeypatch):
    path = tmp_path / "huge.psd"
    path.write_bytes(_header(30000, 30000) + b"\0" * 64)

    def never(*_args, **_kwargs):
        raise AssertionError("psd-tools must not be reached")

    import psd_tools

    monkeypatch.setattr(psd_tools.PSDImage, "open", never)
    with pytest.raises(Rejected) as info:
        extract_module.extract(path)
    assert info.value.reason == "too-large"
    assert "30000x30000" in info.value.detail


def test_limit_is_an_option():
    header = read_header_bytes(_header(100, 100))
    check_header(header, max_pixels=100 * 100)
    with pytest.raises(Rejected, match="too-large"):
        check_header(header, max_pixels=100 * 100 - 1)


def read_header_bytes(data: bytes):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".psd") as f:
        f.write(data)
        f.flush()
        return read_header(f.name)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not-psd"),
        (b"8BPS\x00\x01", "not-psd"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "not-psd"),
        (_header(10, 10, version=3), "bad-header"),
        (_header(10, 10, depth=7), "bad-header"),
    ],
)
def test_bad_headers_are_rejected_with_a_reason(data, reason):
    with pytest.raises(Rejected) as info:
        read_header_bytes(data)
    assert info.value.reason == reason


def test_zero_size_and_psd_axis_limit():
    with pytest.raises(Rejected, match="bad-header"):
        check_header(read_header_bytes(_header(0, 10)))
    with pytest.raises(Rejected, match="bad-header"):  # PSD (version 1) allows 30000 px per side, PSB 300000
        check_header(read_header_bytes(_header(30001, 1)), max_pixels=10**12)
    check_header(read_header_bytes(_header(30001, 1, version=2)), max_pixels=10**12)
