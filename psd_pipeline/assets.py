"""Fonts, colour emoji and icons for synthetic designs, from Debian packages (nothing is downloaded).

`require_assets()` names the packages to install when a file is missing; fonts load once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from layered.errors import InputError

FONTS = Path("/usr/share/fonts")
# family -> weights (name, file); every family ships in one Debian package
TEXT_FONTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Liberation Sans": (
        ("Regular", "truetype/liberation2/LiberationSans-Regular.ttf"),
        ("Bold", "truetype/liberation2/LiberationSans-Bold.ttf"),
        ("Italic", "truetype/liberation2/LiberationSans-Italic.ttf"),
    ),
    "Liberation Serif": (
        ("Regular", "truetype/liberation2/LiberationSerif-Regular.ttf"),
        ("Bold", "truetype/liberation2/LiberationSerif-Bold.ttf"),
        ("Italic", "truetype/liberation2/LiberationSerif-Italic.ttf"),
    ),
    "Liberation Mono": (("Bold", "truetype/liberation2/LiberationMono-Bold.ttf"),),
    "Open Sans": (
        ("Light", "truetype/open-sans/OpenSans-Light.ttf"),
        ("Regular", "truetype/open-sans/OpenSans-Regular.ttf"),
        ("Bold", "truetype/open-sans/OpenSans-Bold.ttf"),
        ("ExtraBold", "truetype/open-sans/OpenSans-ExtraBold.ttf"),
        ("Condensed Bold", "truetype/open-sans/OpenSans-CondBold.ttf"),
    ),
    "Lato": (
        ("Light", "truetype/lato/Lato-Light.ttf"),
        ("Regular", "truetype/lato/Lato-Regular.ttf"),
        ("Bold", "truetype/lato/Lato-Bold.ttf"),
        ("Black", "truetype/lato/Lato-Black.ttf"),
    ),
    "DejaVu Sans": (
        ("Regular", "truetype/dejavu/DejaVuSans.ttf"),
        ("Bold", "truetype/dejavu/DejaVuSans-Bold.ttf"),
        ("Condensed Bold", "truetype/dejavu/DejaVuSansCondensed-Bold.ttf"),
    ),
    "DejaVu Serif": (("Bold", "truetype/dejavu/DejaVuSerif-Bold.ttf"),),
}
EMOJI_FONT = "truetype/noto/NotoColorEmoji.ttf"
EMOJI_BITMAP_SIZE = 109  # the only size of Noto Color Emoji's CBDT bitmaps
ICON_FONT = "truetype/font-awesome/fontawesome-webfont.ttf"
PACKAGES = {  # path prefix -> Debian package
    "truetype/liberation2/": "fonts-liberation2",
    "truetype/open-sans/": "fonts-open-sans",
    "truetype/lato/": "fonts-lato",
    "truetype/dejavu/": "fonts-dejavu-core fonts-dejavu-extra",
    "truetype/noto/": "fonts-noto-color-emoji",
    "truetype/font-awesome/": "fonts-font-awesome",
}
# Single-codepoint emoji (faces, animals, food, objects, symbols) and Font Awesome 4.7 icons
EMOJI = tuple(
    chr(c)
    for c in (
        *range(0x1F600, 0x1F60F),
        0x1F60D,
        0x1F618,
        0x1F61C,
        0x1F62E,
        0x1F631,
        0x1F634,
        0x1F642,
        0x1F644,
        0x1F913,
        0x1F929,
        0x1F973,
        0x1F436,
        0x1F431,
        0x1F42D,
        0x1F430,
        0x1F98A,
        0x1F43B,
        0x1F43C,
        0x1F428,
        0x1F42F,
        0x1F981,
        0x1F42E,
        0x1F437,
        0x1F438,
        0x1F435,
        0x1F414,
        0x1F427,
        0x1F426,
        0x1F41D,
        0x1F98B,
        0x1F422,
        0x1F419,
        0x1F433,
        0x1F34E,
        0x1F34A,
        0x1F34B,
        0x1F34C,
        0x1F349,
        0x1F347,
        0x1F353,
        0x1F352,
        0x1F351,
        0x1F34D,
        0x1F951,
        0x1F955,
        0x1F33D,
        0x1F354,
        0x1F355,
        0x1F32D,
        0x1F369,
        0x1F36A,
        0x1F382,
        0x1F366,
        0x1F36D,
        0x1F37F,
        0x2615,
        0x1F379,
        0x1F37A,
        0x1F381,
        0x1F388,
        0x1F389,
        0x1F3C6,
        0x26BD,
        0x1F3C0,
        0x1F3B8,
        0x1F3A7,
        0x1F4F7,
        0x1F4A1,
        0x1F4DA,
        0x1F680,
        0x1F697,
        0x1F6B2,
        0x2708,
        0x1F3E0,
        0x1F30D,
        0x1F319,
        0x2B50,
        0x1F31E,
        0x1F308,
        0x26A1,
        0x1F525,
        0x1F4A7,
        0x1F33B,
        0x1F339,
        0x1F337,
        0x1F332,
        0x1F335,
        0x1F340,
        0x1F344,
        0x1F48E,
        0x1F514,
        0x1F4E3,
        0x1F4B0,
        0x1F6D2,
        0x2764,
        0x1F49B,
        0x1F49A,
        0x1F499,
        0x1F4AF,
    )  # fmt: skip
)
ICONS = tuple(
    chr(c)
    for c in (
        0xF004,
        0xF005,
        0xF007,
        0xF015,
        0xF030,
        0xF001,
        0xF002,
        0xF0E0,
        0xF013,
        0xF1F8,
        0xF07A,
        0xF0F4,
        0xF0F3,
        0xF06B,
        0xF0E7,
        0xF0C2,
        0xF185,
        0xF186,
        0xF1B9,
        0xF072,
        0xF0AC,
        0xF095,
        0xF03E,
        0xF08A,
        0xF0E6,
        0xF164,
        0xF165,
        0xF02D,
        0xF0EB,
        0xF1FC,
        0xF135,
        0xF0A1,
        0xF11B,
        0xF1E3,
        0xF0D1,
        0xF206,
        0xF2B5,
        0xF290,
        0xF1B0,
        0xF17C,
        0xF19C,
        0xF1AE,
        0xF0C0,
        0xF0F2,
        0xF21E,
        0xF24E,
        0xF0E4,
        0xF121,
    )  # fmt: skip
)


class AssetsMissing(InputError):
    """A font file the generator needs is not installed (the message says which packages to install)."""


def asset_paths() -> list[str]:
    """Every font file the rich style uses, relative to /usr/share/fonts."""
    return [path for weights in TEXT_FONTS.values() for _, path in weights] + [EMOJI_FONT, ICON_FONT]


def require_assets() -> None:
    """Raise AssetsMissing (one line: the apt-get command) unless every font file is installed."""
    missing = [p for p in asset_paths() if not (FONTS / p).is_file()]
    if missing:
        packages = sorted({pkg for p in missing for prefix, pkg in PACKAGES.items() if p.startswith(prefix)})
        raise AssetsMissing(
            f"synthetic designs need fonts that are not installed ({FONTS / missing[0]}): "
            f"run `apt-get install {' '.join(packages)}`, or use --style flat"
        )


@functools.lru_cache(maxsize=256)
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A FreeType font (path relative to /usr/share/fonts) at `size` px, cached per process."""
    return ImageFont.truetype(str(FONTS / path), size)


@functools.lru_cache(maxsize=len(EMOJI))
def emoji_bitmap(char: str) -> np.ndarray:
    """The colour bitmap of one emoji at its native 109 px, RGBA cropped to its alpha box (read-only)."""
    face = font(EMOJI_FONT, EMOJI_BITMAP_SIZE)
    left, top, right, bottom = face.getbbox(char)
    image = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((1 - left, 1 - top), char, font=face, embedded_color=True)
    pixels = np.asarray(image)
    rows, cols = np.flatnonzero(pixels[..., 3].any(1)), np.flatnonzero(pixels[..., 3].any(0))
    out = np.ascontiguousarray(pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    out.flags.writeable = False
    return out
