"""The layer model: `Layer` (cropped pixels + placement) and `LayerStack` (canvas + layers, bottom-first)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from layered.errors import InputError
from layered.fileio import MAX_PIXELS, atomic_dir, open_image, resolve_inside, safe_filename, save_png, to_rgba_array
from layered.ownership import GENERATOR, SIGNATURE_PLACEHOLDER, file_digest, sign
from layered.pixels import alpha_bbox

LAYERS_JSON = "layers.json"
COMPOSITE_PNG = "composite.png"
MAX_SPEC_BYTES = 64 << 20  # layers.json
MAX_OFFSET = 1 << 30  # layer offsets, in pixels either way (PSD stores them as int32)
# What a layer holds, where a decomposer or a data set knows it (optional everywhere; layers.json "kind").
KINDS = ("background", "panel", "object", "text")


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    """One layer: straight-alpha RGBA pixels cropped to content, placed at (x, y) on the canvas."""

    pixels: np.ndarray
    x: int = 0
    y: int = 0
    name: str = ""
    opacity: float = 1.0
    visible: bool = True
    kind: str | None = None  # one of KINDS, or None where unknown

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"layer kind must be one of {', '.join(KINDS)} or None, got {self.kind!r}")
        pixels = np.ascontiguousarray(self.pixels, dtype=np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 4:
            raise ValueError(f"layer pixels must be H x W x 4, got shape {pixels.shape}")
        pixels.flags.writeable = False  # layers are values: edits return new layers
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "x", int(self.x))
        object.__setattr__(self, "y", int(self.y))
        if not math.isfinite(self.opacity):
            raise ValueError(f"layer opacity must be a number from 0 to 1, got {self.opacity}")
        object.__setattr__(self, "opacity", float(min(max(self.opacity, 0.0), 1.0)))
        object.__setattr__(self, "name", str(self.name))

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) on the canvas; may lie partly outside it."""
        return self.x, self.y, self.x + self.width, self.y + self.height

    @property
    def is_empty(self) -> bool:
        return self.pixels.size == 0 or not self.pixels[..., 3].any()

    def replace(self, **changes) -> Layer:
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_canvas(cls, image: np.ndarray, name: str = "", **fields) -> Layer:
        """A layer from a full-canvas RGBA image, cropped to its alpha bounding box."""
        image = np.asarray(image, dtype=np.uint8)
        box = alpha_bbox(image)
        if box is None:
            return cls(np.zeros((0, 0, 4), np.uint8), 0, 0, name, **fields)
        left, top, right, bottom = box
        return cls(image[top:bottom, left:right], left, top, name, **fields)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerStack:
    """A canvas of `width` x `height` and its layers, bottom-first (index 0 is the background)."""

    width: int
    height: int
    layers: tuple[Layer, ...] = ()
    working_size: tuple[int, int] | None = None  # (width, height) the decomposer worked at, when known
    refined: bool | None = None  # whether `layered.refine` made the layers add up to the input image
    notes: tuple[str, ...] = ()  # what a reader simplified to open the file (e.g. a PSD's merged layers)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"canvas must be at least 1 x 1, got {self.width} x {self.height}")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "notes", tuple(self.notes))

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def replace(self, **changes) -> LayerStack:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_images(cls, images: Sequence, names: Sequence[str] | None = None) -> LayerStack:
        """A stack from full-canvas RGBA images (PIL or arrays, bottom-first), each cropped to content."""
        arrays = [np.asarray(im.convert("RGBA")) if hasattr(im, "convert") else np.asarray(im) for im in images]
        if not arrays:
            raise ValueError("from_images needs at least one image")
        height, width = arrays[0].shape[:2]
        if any(a.shape[:2] != (height, width) for a in arrays):
            raise ValueError("all images of a stack must have the same size")
        names = list(names) if names is not None else [f"Layer {i}" for i in range(len(arrays))]
        return cls(width, height, tuple(Layer.from_canvas(a, n) for a, n in zip(arrays, names, strict=True)))

    def render_layer(self, index: int) -> np.ndarray:
        """Layer `index` on a transparent full canvas (opacity applied to alpha; ignores visibility)."""
        return composite([self.layers[index].replace(visible=True)], self.width, self.height)

    def composite(self) -> np.ndarray:
        """The flattened image, H x W x 4 uint8 straight alpha."""
        return composite(self.layers, self.width, self.height)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the layer folder (layers.json + one PNG per layer + composite.png), atomically."""
        folder = Path(folder)
        entries = []
        with atomic_dir(folder) as tmp:
            for i, layer in enumerate(self.layers):
                file = f"{i:03d}_{safe_filename(layer.name)}.png"
                pixels = layer.pixels if layer.pixels.size else np.zeros((1, 1, 4), np.uint8)
                save_png(pixels, tmp / file)
                entries.append(
                    {
                        "file": file,
                        "name": layer.name,
                        "x": layer.x,
                        "y": layer.y,
                        "opacity": layer.opacity,
                        "visible": layer.visible,
                        **({"kind": layer.kind} if layer.kind is not None else {}),
                    }
                )
            save_png(self.composite(), tmp / COMPOSITE_PNG)
            doc = {"width": self.width, "height": self.height, "layers": entries}
            if self.working_size is not None:
                doc["working_size"] = list(self.working_size)
            if self.refined is not None:
                doc["refined"] = bool(self.refined)
            if self.notes:
                doc["notes"] = list(self.notes)
            # what makes the folder ours (layered.ownership): every file's digest, and layers.json signed
            doc["generator"] = GENERATOR
            doc["files"] = {p.name: file_digest(p) for p in sorted(tmp.iterdir())}
            doc["signature"] = SIGNATURE_PLACEHOLDER
            (tmp / LAYERS_JSON).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            sign(tmp / LAYERS_JSON)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LayerStack:
        """Read a layer folder written by `save` (or by hand); bad content raises InputError."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        spec = folder / LAYERS_JSON
        if not spec.is_file():
            raise InputError(f"{folder}: no {LAYERS_JSON} (not a layer folder)")
        if spec.stat().st_size > MAX_SPEC_BYTES:
            raise InputError(f"{spec}: larger than {MAX_SPEC_BYTES >> 20} MiB")
        try:
            doc = json.loads(spec.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            raise InputError(f"{spec}: not valid JSON ({type(exc).__name__})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
            raise InputError(f"{spec}: malformed (expected an object with width, height and a list of layers)")
        width, height = _whole(doc.get("width"), spec, "width"), _whole(doc.get("height"), spec, "height")
        check_canvas(width, height, spec)
        layers = []
        for i, entry in enumerate(doc["layers"]):
            where = f"{spec}: layer {i}"
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise InputError(f"{where}: malformed (expected an object with a file name)")
            x, y = _whole(entry.get("x", 0), where, "x"), _whole(entry.get("y", 0), where, "y")
            if max(abs(x), abs(y)) > MAX_OFFSET:
                raise InputError(f"{where}: offset {x}, {y} is beyond {MAX_OFFSET} pixels")
            opacity, visible = entry.get("opacity", 1.0), entry.get("visible", True)
            if isinstance(opacity, bool) or not isinstance(opacity, int | float) or not 0.0 <= opacity <= 1.0:
                raise InputError(f"{where}: opacity must be a number from 0 to 1, got {_short(opacity)}")
            if visible not in (True, False):  # also 0 and 1
                raise InputError(f"{where}: visible must be true or false, got {_short(visible)}")
            name, kind = entry.get("name", ""), entry.get("kind")
            if kind is not None and kind not in KINDS:
                raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, got {_short(kind)}")
            path = resolve_inside(folder, entry["file"])
            pixels = to_rgba_array(open_image(path))
            name = name if isinstance(name, str) else str(name)
            layers.append(Layer(pixels, x, y, name, float(opacity), bool(visible), kind))
        size, refined = _working_size(doc.get("working_size"), spec), _flag(doc, spec)
        return cls(width, height, tuple(layers), size, refined, _notes(doc.get("notes", []), spec))


def _notes(value, spec) -> tuple[str, ...]:
    """The optional `notes` of layers.json: what a reader simplified (absent in most files)."""
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise InputError(f"{spec}: notes must be a list of strings, got {_short(value)}")
    return tuple(value)


def _working_size(value, spec) -> tuple[int, int] | None:
    """The optional `working_size` of layers.json (absent in older files)."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise InputError(f"{spec}: working_size must be [width, height], got {_short(value)}")
    return value[0], value[1]


def _flag(doc: dict, spec) -> bool | None:
    """The optional `refined` flag of layers.json (absent in older files)."""
    value = doc.get("refined")
    if value is not None and not isinstance(value, bool):
        raise InputError(f"{spec}: refined must be true or false, got {_short(value)}")
    return value


def check_canvas(width: int, height: int, source: object = "canvas") -> None:
    """Refuse a canvas that is empty or larger than the decoded-image limit (`fileio.MAX_PIXELS`)."""
    if width <= 0 or height <= 0:
        raise InputError(f"{source}: invalid canvas size {width} x {height}")
    if width * height > MAX_PIXELS:
        raise InputError(f"{source}: canvas {width}x{height} is larger than the limit of {MAX_PIXELS} pixels")


def _whole(value: object, where: object, field: str) -> int:
    """A JSON number that is a whole number (10 or 10.0), as int; anything else is bad input."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: {field} must be a whole number, got {_short(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InputError(f"{where}: {field} must be a whole number, got {_short(value)}")
    return int(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def composite(layers: Iterable[Layer], width: int, height: int) -> np.ndarray:
    """Porter-Duff "over" of `layers` (bottom-first) on a transparent canvas; H x W x 4 uint8 straight.

    Computed premultiplied in float32, planar, one band of rows at a time so the working set stays in
    cache, and only inside each layer's on-canvas rectangle.
    """
    boxes = []
    for layer in layers:
        if not layer.visible or layer.opacity <= 0 or layer.pixels.size == 0:
            continue
        left, top = max(layer.x, 0), max(layer.y, 0)
        right, bottom = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
        if right > left and bottom > top:
            boxes.append((layer, left, top, right, bottom))
    out = np.zeros((height, width, 4), np.uint8)
    band = max(1, min(height, _BAND_PIXELS // width))
    acc = np.empty((4, band, width), np.float32)  # premultiplied RGBA in [0, 1]
    scratch = np.empty((4, band, width), np.float32)
    for row in range(0, height, band):
        end = min(row + band, height)
        hits = [box for box in boxes if box[2] < end and box[4] > row]
        if not hits:
            continue
        acc_band = acc[:, : end - row]
        acc_band.fill(0.0)
        for layer, left, top, right, bottom in hits:
            y0, y1 = max(top, row), min(bottom, end)
            src = layer.pixels[y0 - layer.y : y1 - layer.y, left - layer.x : right - layer.x]
            _over(acc[:, y0 - row : y1 - row, left:right], src, layer.opacity, scratch)
        _store_straight(acc_band, out[row:end])
    return out


_BAND_PIXELS = 1 << 16  # pixels per band: 4 planes x 4 bytes x 64 Ki = 1 MiB per buffer


def _over(dst: np.ndarray, src: np.ndarray, opacity: float, scratch: np.ndarray) -> None:
    """dst = src + (1 - src_alpha) * dst in place; `dst` planar premultiplied float, `src` straight uint8."""
    tmp = scratch[:, : dst.shape[1], : dst.shape[2]]
    np.copyto(tmp, src.transpose(2, 0, 1))
    alpha = tmp[3]
    alpha *= opacity / 255.0
    dst *= 1.0 - alpha
    tmp[:3] *= alpha * (1.0 / 255.0)
    dst += tmp


def _store_straight(acc: np.ndarray, out: np.ndarray) -> None:
    """Planar premultiplied float -> interleaved straight-alpha uint8 `out` (RGB 0 where alpha is 0)."""
    alpha = acc[3]
    scale = np.divide(255.0, alpha, out=np.zeros_like(alpha), where=alpha > 0)
    rgb = acc[:3] * scale
    rgb += 0.5
    np.minimum(rgb, 255.0, out=rgb)
    out[..., :3] = rgb.transpose(1, 2, 0)
    out[..., 3] = alpha * 255.0 + 0.5
