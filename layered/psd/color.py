"""Colour management: psd-tools' planes in the document's colour space -> sRGB straight RGBA uint8.

One rule for every reader (the builder, the editor, `compose`, `eval`, `refine`):
- a document with an embedded ICC profile is converted through it to sRGB (ImageCms, perceptual intent, as
  psd-tools' colour-managed `topil()` does); an embedded profile that is measured to be the sRGB identity is
  skipped (most RGB files), while the linear-light sRGB profile of 32-bit documents is applied;
- an untagged CMYK document goes through Pillow's profile-free formula (R = 255 - min(255, C + K), and so on
  for G and B), the conversion psd-tools' own `topil()` and `composite()` use, so the layers and the
  stored composite agree; untagged RGB and greyscale are taken as sRGB.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from layered.psd.errors import Rejected

_ICC_CACHE: dict = {}


def to_rgba8(psd, color: np.ndarray, alpha: np.ndarray, clear: bool = True) -> np.ndarray:
    """psd-tools' float planes (H x W x 1|3|4 colour, H x W x 1 alpha) -> sRGB straight RGBA uint8 (rounded).

    `clear` zeroes the colour under full transparency (a render's backdrop); a layer's own channels keep it.
    """
    from PIL import Image

    channels = color.shape[2]
    mode = {1: "L", 3: "RGB", 4: "CMYK"}.get(channels)
    if mode is None:
        raise Rejected("color-mode", f"rendered {channels} colour channels")
    data = _to_uint8(color)
    out = np.empty(data.shape[:2] + (4,), np.uint8)
    if mode != "CMYK" and icc_transform(psd, mode) is None:  # sRGB already (or untagged): no PIL round trip
        out[..., :3] = data
    else:
        if mode == "CMYK":
            data = 255 - data  # psd-tools keeps CMYK inverted, as stored
        out[..., :3] = np.asarray(image_to_srgb(psd, Image.fromarray(data[..., 0] if mode == "L" else data, mode)))
    out[..., 3] = _to_uint8(alpha[..., 0])
    if clear:
        out[out[..., 3] == 0] = 0  # no colour under full transparency (psd-tools leaves its backdrop there)
    return out


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Float levels in [0, 1] (clipped) -> uint8, rounded half up: round(clip(v, 0, 1) * 255)."""
    scaled = values * np.float32(255.0)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def image_to_srgb(psd, image):
    """A PIL image in the document's colour space (L, RGB or CMYK) as an sRGB "RGB" image (the module's rule)."""
    transform = icc_transform(psd, image.mode) if image.mode in ("L", "RGB", "CMYK") else None
    if transform is None:
        return image.convert("RGB")
    from PIL import Image, ImageCms

    if image.mode == "L":  # one channel: the transform of each of the 256 levels, looked up (the same pixels)
        table = _grey_table(transform)
        levels = np.asarray(image)
        if table.ndim == 1:  # a neutral grey stays neutral: one lookup, three equal bands
            grey = Image.fromarray(np.take(table, levels), "L")
            return Image.merge("RGB", (grey, grey, grey))
        return Image.fromarray(np.take(table, levels, axis=0), "RGB")
    return ImageCms.applyTransform(image, transform).convert("RGB")


def stored_to_srgb(psd, image) -> np.ndarray:
    """A stored composite in sRGB: H x W x 4 when it has alpha, H x W x 3 when it is flattened (opaque)."""
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    base = image.convert({"RGBA": "RGB", "LA": "L", "1": "L", "P": "RGB", "PA": "RGB"}.get(image.mode, image.mode))
    rgb = np.asarray(image_to_srgb(psd, base))
    if alpha is None:
        return rgb
    return np.concatenate([rgb, np.asarray(alpha)[..., None]], axis=2)


def icc_profile(psd) -> bytes | None:
    """The embedded ICC profile's bytes, or None."""
    from psd_tools.constants import Resource

    if Resource.ICC_PROFILE not in psd.image_resources:
        return None
    return bytes(psd.image_resources.get_data(Resource.ICC_PROFILE))


def icc_transform(psd, mode: str):
    """A cached ImageCms transform from the document's embedded profile to sRGB, or None (nothing to do)."""
    profile = icc_profile(psd)
    if profile is None:
        return None
    key = (hashlib.sha1(profile).hexdigest(), mode)
    if key not in _ICC_CACHE:
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            # perceptual intent, as psd-tools' colour-managed topil()/composite() use (Pillow's default)
            transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            transform = None
        if transform is not None and mode == "RGB" and _near_identity(transform):
            transform = None  # an embedded sRGB profile: skip the work (the most common case)
        if len(_ICC_CACHE) >= 16:  # most files share a handful of profiles
            _ICC_CACHE.pop(next(iter(_ICC_CACHE)))
        _ICC_CACHE[key] = transform
    return _ICC_CACHE[key]


_GREY_TABLES: dict = {}


def _grey_table(transform) -> np.ndarray:
    """The sRGB colour of each of the 256 grey levels under `transform`: 256 levels (neutral) or 256 x 3."""
    key = id(transform)
    if key not in _GREY_TABLES or _GREY_TABLES[key][0] is not transform:
        from PIL import Image, ImageCms

        levels = Image.fromarray(np.arange(256, dtype=np.uint8)[None, :], "L")
        table = np.asarray(ImageCms.applyTransform(levels, transform).convert("RGB"))[0]
        if (table == table[:, :1]).all():
            table = np.ascontiguousarray(table[:, 0])
        if len(_GREY_TABLES) >= 16:
            _GREY_TABLES.pop(next(iter(_GREY_TABLES)))
        _GREY_TABLES[key] = (transform, table)
    return _GREY_TABLES[key][1]


def profile_description(psd) -> str | None:
    """The embedded ICC profile's description (what the colours were converted from), or None."""
    profile = icc_profile(psd)
    if profile is None:
        return None
    from PIL import ImageCms

    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
        return description.strip() or "unnamed profile"
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _near_identity(transform) -> bool:
    """Whether an RGB -> sRGB transform moves no colour of a 65^3 probe grid by more than one level.

    Measured, not guessed from the profile's name: "sRGB IEC61966-2.1 (Linear RGB Profile)", which
    32-bit documents carry, is linear light and far from the identity.
    """
    from PIL import Image, ImageCms

    levels = np.minimum(np.arange(0, 257, 4), 255).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(levels.size**2, levels.size, 3)
    out = np.asarray(ImageCms.applyTransform(Image.fromarray(grid, "RGB"), transform))
    return int(np.abs(out.astype(np.int16) - grid).max()) <= 1
