"""Colour management: layers and reference in sRGB through the document's ICC profile (issue 18, defect 9).

Checked against psd-tools' colour-managed composite and Photoshop's own PNG renders, never against the
builder's reference.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import alpha_over_psnr, colour_managed_composite
from PIL import Image, ImageCms

from layered.formats.psd import read_with_notes
from layered.psd.extract import extract
from psd_pipeline.sample import SampleOptions, process_file

# 32-bit documents carry "sRGB IEC61966-2.1 (Linear RGB Profile)": their stored values are linear light
LINEAR_PROFILE = [
    "300dpi.psd",
    "300dpi.psb",
    "32bit.psb",
    "32bit5x5.psd",
    "pen-text.psd",
    "pen-text.psb",
    "transparentbg.psd",
    "transparentbg.psb",
    "vector-mask.psb",
    "vector-mask-disabled.psd",
]
OTHER_PROFILES = ["colormodes/4x4_8bit_cmyk.psd", "colorprofiles/north_america_newspaper.psd", "gray1.psd"]


def _row_layers(row: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(data))) for data in row["layers"]]


@pytest.mark.parametrize("name", LINEAR_PROFILE + OTHER_PROFILES)
def test_accepted_rows_match_the_colour_managed_composite(shared_dir, name):
    from psd_tools import PSDImage

    path = shared_dir / "psd-corpus" / name
    result = process_file(path, name, SampleOptions())
    assert result["record"]["outcome"] == "accepted", result["record"]
    reference = colour_managed_composite(PSDImage.open(path))
    value = alpha_over_psnr(_row_layers(result["row"]), reference)
    assert value >= 40.0, (name, value)
    # the builder's own gate measures the same thing (within rounding of the un-matting)
    assert abs(value - result["record"]["psnr"]) < 3.0, (value, result["record"]["psnr"])


@pytest.mark.parametrize("name", ["32bit.psb", "300dpi.psd", "colorprofiles/north_america_newspaper.psd"])
def test_raw_stored_values_are_not_what_photoshop_shows(shared_dir, name):
    """The defect: without the profile, the layers match the raw values and not the managed composite."""
    from psd_tools import PSDImage

    psd = PSDImage.open(shared_dir / "psd-corpus" / name)
    raw = np.asarray(psd.topil(apply_icc=False).convert("RGB"))
    managed = colour_managed_composite(psd)
    layers = [extract(shared_dir / "psd-corpus" / name).stack.composite()]
    assert alpha_over_psnr(layers, managed) >= 40.0
    assert alpha_over_psnr(layers, raw) < 30.0


@pytest.mark.parametrize("name", ["brightnesscontrast_cmyk", "threshold_cmyk", "brightnesscontrast_legacy_cmyk"])
def test_cmyk_reference_matches_photoshops_own_render(shared_dir, name):
    """CMYK: the stored composite through the SWOP profile is what Photoshop rendered to PNG; the naive
    (profile-free) CMYK -> RGB conversion is not."""
    from psd_tools import PSDImage

    folder = shared_dir / "psd-corpus" / "adjustments"
    photoshop = np.asarray(Image.open(folder / f"{name}.png").convert("RGBA"))
    reference = extract(folder / f"{name}.psd").reference
    assert reference.shape == photoshop.shape[:2] + (3,)
    assert alpha_over_psnr([photoshop], reference) >= 40.0
    naive = np.asarray(PSDImage.open(folder / f"{name}.psd").topil(apply_icc=False).convert("RGB"))
    assert alpha_over_psnr([photoshop], naive) < 30.0


@pytest.mark.parametrize("name", ["300dpi.psd", "32bit.psb", "transparentbg.psd", "colormodes/4x4_8bit_cmyk.psd"])
def test_editor_reader_is_colour_managed_too(shared_dir, name):
    from psd_tools import PSDImage

    path = shared_dir / "psd-corpus" / name
    stack, _notes = read_with_notes(path)
    assert alpha_over_psnr([stack.composite()], colour_managed_composite(PSDImage.open(path))) >= 40.0


def test_meta_names_the_profile_the_colours_came_from(shared_dir):
    import json

    rows = {
        name: process_file(shared_dir / "psd-corpus" / name, name, SampleOptions())["row"]
        for name in ["32bit5x5.psd", "colormodes/4x4_8bit_cmyk.psd", "1layer.psd"]
    }
    profiles = {name: json.loads(row["meta"])["color_profile"] for name, row in rows.items()}
    assert profiles == {
        "32bit5x5.psd": "sRGB IEC61966-2.1 (Linear RGB Profile)",
        "colormodes/4x4_8bit_cmyk.psd": "Japan Color 2001 Coated",
        "1layer.psd": None,
    }


def test_untagged_cmyk_agrees_with_psd_tools_and_says_it_had_no_profile(shared_dir, tmp_path):
    """Without an embedded profile (as in psd-tools' cmyk-blend-modes.psd) both sides use Pillow's
    profile-free CMYK -> RGB formula: consistent, but far from what the same document shows when tagged."""
    import json

    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    tagged_path = shared_dir / "psd-corpus" / "colormodes" / "4x4_8bit_cmyk.psd"
    psd = PSDImage.open(tagged_path)
    del psd.image_resources[Resource.ICC_PROFILE]
    untagged_path = tmp_path / "untagged-cmyk.psd"
    psd.save(untagged_path)
    result = process_file(untagged_path, "untagged-cmyk.psd", SampleOptions())
    assert result["record"]["outcome"] == "accepted"
    assert json.loads(result["row"]["meta"])["color_profile"] is None
    layers = _row_layers(result["row"])
    assert alpha_over_psnr(layers, colour_managed_composite(PSDImage.open(untagged_path))) >= 40.0
    assert alpha_over_psnr(layers, colour_managed_composite(PSDImage.open(tagged_path))) < 25.0


@pytest.mark.parametrize("name", ["transparentbg.psd", "transparentbg.psb"])
def test_transparent_documents_are_unmatted_before_the_profile(shared_dir, name):
    """Why `colour_managed_composite` departs from plain `topil()` for transparent, profiled documents:
    psd-tools' own colour-managed render of the layers agrees with un-matting in the document's space
    (then the profile), not with `topil()`, which un-mattes after the profile, in sRGB."""
    from psd_tools import PSDImage

    psd = PSDImage.open(shared_dir / "psd-corpus" / name)
    rendered = np.asarray(psd.composite(ignore_preview=True).convert("RGBA"))
    plain = np.asarray(psd.topil().convert("RGBA"))
    assert alpha_over_psnr([rendered], colour_managed_composite(psd)) >= 50.0
    assert alpha_over_psnr([rendered], plain) < 40.0


def test_greyscale_lookup_equals_the_full_profile_transform(shared_dir):
    """Greyscale goes through a 256-level table of the profile transform: the same pixels as ImageCms'
    transform of the whole image, built here from the embedded profile."""
    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    from layered.psd.color import image_to_srgb

    checked = 0
    for path in sorted((shared_dir / "psd-corpus").rglob("*.ps[db]")):
        psd = PSDImage.open(path)
        if psd.color_mode.name != "GRAYSCALE" or Resource.ICC_PROFILE not in psd.image_resources:
            continue
        image = psd.topil(apply_icc=False).convert("L")
        profile = ImageCms.ImageCmsProfile(io.BytesIO(bytes(psd.image_resources.get_data(Resource.ICC_PROFILE))))
        want = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        assert np.array_equal(np.asarray(image_to_srgb(psd, image)), np.asarray(want)), path.name
        checked += 1
    assert checked >= 8
