"""Compositing level of the PSD core: the fast reading of the stored composite is psd-tools' own, byte for byte."""

from __future__ import annotations

import numpy as np

from layered.psd.render import stored_image


def test_stored_image_is_psd_tools_topil_on_every_corpus_file(shared_dir):
    from psd_tools import PSDImage

    checked = fast = 0
    for path in sorted((shared_dir / "psd-corpus").rglob("*.ps[db]")):
        try:
            psd = PSDImage.open(path)
            want = psd.topil(apply_icc=False) if psd.has_preview() else None
        except Exception:  # a file psd-tools cannot read is not this test's business
            continue
        if want is None:
            continue
        got = stored_image(psd)
        assert got.mode == want.mode and np.array_equal(np.asarray(got), np.asarray(want)), path.name
        checked += 1
        fast += psd.depth == 8 and psd.color_mode.name == "RGB" and want.mode == "RGBA"
    assert checked >= 140 and fast >= 50
