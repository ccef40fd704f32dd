"""A PSD file -> a `LayerStack` whose plain alpha-over (bottom-first) reproduces the image.

Rules, applied while walking the layer tree bottom-first:
- pixel, shape, type, smart-object and fill layers become one layer each, rasterised by psd-tools with
  their masks, vector masks, effects, opacity and fill opacity;
- a clipping group (a base layer and the layers clipped to it) is baked into one layer;
- a group with normal or pass-through blending, full opacity, no mask, no effects and nothing clipped
  to it is expanded into its children; any other group is flattened to one layer (an isolated group
  with an adjustment or a blend mode inside is flattened too: what they change stays inside it);
- a layer that interacts with what lies beneath it (blend mode other than normal, an adjustment
  layer, an outer effect with a blend mode) is merged with the layers it changes: those beneath it
  that overlap its region, plus, transitively, the layers between them that overlap those. The merge
  is rendered by psd-tools from the original layers, so the blend is exact, and layers it leaves
  alone stay separate (order is kept because the ones it jumps over do not overlap the merged ones);
- hidden and empty layers are dropped.
Every output layer is rendered from original psd-tools layers, never from a previous approximation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import warnings
from collections.abc import Iterator

import numpy as np

from layered.fileio import MAX_PIXELS
from layered.psd import header as psd_header
from layered.psd.errors import Rejected, short
from layered.psd.header import CONVERTIBLE_MODES, PsdHeader
from layered.psd.layers import why_not_plain
from layered.stack import Layer, LayerStack, composite
from psd_pipeline.fidelity import psnr

NORMAL_BLENDS = ("NORMAL", "PASS_THROUGH")
OUTER_EFFECTS = ("DropShadow", "OuterGlow", "Stroke")
ISOLATED_INTERACTION = "isolated group with a blend mode or adjustment inside"


@dataclasses.dataclass
class SourceNode:
    """One layer of the source tree, and what the extraction did with it (for `inspect` and `meta`)."""

    index: int
    depth: int
    name: str
    kind: str
    blend: str
    bbox: tuple[int, int, int, int]
    visible: bool
    clipping: bool
    opacity: int
    action: str = ""


@dataclasses.dataclass
class Unit:
    """Source layers rendered together into one output layer."""

    members: list
    name: str
    kind: str
    interacts: bool
    nodes: list[int]
    layer: Layer | None = None  # rendered, cropped to content
    region: tuple[int, int, int, int] | None = None


@dataclasses.dataclass
class Extraction:
    """The extracted stack and everything needed to explain and check it."""

    header: PsdHeader
    stack: LayerStack
    kinds: list[str]
    layer_nodes: list[list[int]]
    nodes: list[SourceNode]
    merges: list[str]
    texts: list[str]
    reference: np.ndarray
    reference_kind: str
    has_blended_effects: bool = False
    psd_tools_psnr: float | None = None  # psd-tools' own full composite vs the reference, when computed
    rules: str = "default"  # default | strict-effects | verified (see extract_variants)
    color_profile: str | None = None  # the embedded ICC profile's description; None: no usable profile


def open_psd(path: str | os.PathLike, max_pixels: int = MAX_PIXELS):
    """The PSD core's checked open, for the colour modes the builder converts; (PSDImage, header)."""
    return psd_header.open_psd(path, max_pixels, modes=CONVERTIBLE_MODES)


def extract(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, strict_effects: bool = False) -> Extraction:
    """Read `path` and return its layers as an alpha-over stack plus its reference composite.

    `strict_effects` also merges layers whose outer effects (drop shadow, glow, stroke) use a blend mode
    other than normal; by default such an effect is rendered with its layer (exact for a black
    multiply shadow, the common case) and the fidelity gate decides.
    """
    variants = extract_variants(path, max_pixels)
    first = next(variants)
    if not strict_effects:
        return first
    return next(variants, first)


def extract_variants(
    path: str | os.PathLike, max_pixels: int = MAX_PIXELS, min_psnr: float | None = None
) -> Iterator[Extraction]:
    """Extractions from finest to most conservative, for a caller that stops at the first good enough one.

    1. the default rules; then, only if the caller asks for more and psd-tools' own full composite reaches
       `min_psnr` (otherwise no split of psd-tools renders can, and the first extraction carries
       `psd_tools_psnr` to say so):
    2. strict effects (only when it differs from 1);
    3. verified: strict rules, then every prefix of the stack is checked against psd-tools' render of the
       same source layers, and a layer that does not stand alone over what is beneath (for instance in a
       32-bit document, which blends in linear light) is merged with what it overlaps until all agree.
    One parse, shared renders.
    """
    psd, header = open_psd(path, max_pixels)
    logging.getLogger("psd_tools").setLevel(logging.CRITICAL)
    cache: dict = {}
    first = _guarded(_extract, psd, header, False, cache)
    yield first
    if min_psnr is not None:
        full = _guarded(render_layer, psd, None, "", None, cache)
        first.psd_tools_psnr = psnr(composite([full], psd.width, psd.height), first.reference)
        if first.psd_tools_psnr < min_psnr:
            return
    if first.has_blended_effects:
        yield _guarded(_extract, psd, header, True, cache)
    yield _guarded(_extract, psd, header, True, cache, True)


def _guarded(function, *args):
    """Run a rendering step; psd-tools failures become rejections with a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args)
    except Rejected:
        raise
    except MemoryError:
        raise Rejected("out-of-memory", "ran out of memory while rendering") from None
    except Exception as exc:
        raise Rejected("render-error", f"psd-tools failed to render ({type(exc).__name__}: {short(exc)})") from None


def _extract(psd, header: PsdHeader, strict_effects: bool, cache: dict, verify: bool = False) -> Extraction:
    width, height = psd.width, psd.height
    if len(psd) == 0:
        raise Rejected("no-layers", "flat document: no layer records to decompose")
    nodes: list[SourceNode] = []
    units: list[Unit] = []
    _walk(psd, 0, nodes, units, strict_effects)
    if "reference" not in cache:
        cache["reference"] = reference_composite(psd)
    reference, reference_kind = cache["reference"]
    for unit in units:
        plain = plain_pixels(psd, unit.members[0]) if len(unit.members) == 1 else None
        unit.layer = Layer.from_canvas(plain, unit.name) if plain is not None else None
        if unit.layer is None:
            box = None if _is_adjustment(unit.members[0]) else _pad(_union(m.bbox for m in unit.members), 2)
            unit.layer = render_layer(psd, unit.members, unit.name, box, cache)
        unit.region = canvas_box(width, height) if _is_adjustment(unit.members[0]) else _content_box(unit.layer)
    units, merges = _resolve_interactions(psd, units, nodes, cache)
    if verify:
        units, merges = _verify(psd, units, nodes, cache, merges)
    blended_effects = any(
        layer.is_visible() and not layer.is_group() and not _interacts(layer) and _interacts(layer, True)
        for layer in psd.descendants()
    )
    layers, kinds, layer_nodes = [], [], []
    for unit in units:
        layer = unit.layer.replace(name=unit.name)
        if layer.is_empty:
            for i in unit.nodes:
                nodes[i].action += "; dropped: renders empty"
            continue
        layers.append(layer)
        kinds.append(unit.kind)
        layer_nodes.append(unit.nodes)
    if not layers:
        raise Rejected("no-visible-layers", "no visible layer renders any pixel")
    texts = _texts(psd)
    return Extraction(
        header,
        LayerStack(width, height, tuple(layers)),
        kinds,
        layer_nodes,
        nodes,
        merges,
        texts,
        reference,
        reference_kind,
        blended_effects,
        rules="verified" if verify else "strict-effects" if strict_effects else "default",
        color_profile=profile_description(psd),
    )


def reference_composite(psd) -> tuple[np.ndarray, str]:
    """Photoshop's stored composite when the file has one ("stored"), else psd-tools' full composite."""
    image = psd.topil(apply_icc=False) if psd.has_preview() else None
    if image is not None and image.size == psd.size:
        return _stored_to_srgb(psd, image), "stored"
    return render(psd, None), "psd-tools"


def render_layer(psd, members: list | None, name: str, viewport=None, cache: dict | None = None) -> Layer:
    """`render` cropped to its content, as a Layer (what is kept: full canvases are transient)."""
    key = (None if members is None else tuple(sorted(id(m) for m in members)), viewport)
    if cache is not None and key in cache:
        return cache[key]
    layer = Layer.from_canvas(render(psd, members, viewport), name)
    if cache is not None:
        cache[key] = layer
    return layer


def _content_box(layer: Layer) -> tuple[int, int, int, int] | None:
    return None if layer.is_empty else layer.bbox


def render(psd, members: list | None, viewport: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Full-canvas straight RGBA uint8 of `members` (and what is clipped to them) rendered by psd-tools.

    `members=None` renders every visible layer. Only `viewport` is computed when given; if the result
    touches a viewport edge that is not a canvas edge (an effect reaching further than the layer's
    box), the whole canvas is rendered instead.
    """
    from psd_tools.composite import composite

    width, height = psd.width, psd.height
    full = canvas_box(width, height)
    if members is None:
        layer_filter = None
    else:
        allowed: set[int] = set()
        for member in members:
            _allow(member, allowed)
            parent = member.parent
            while parent is not None and parent is not psd:
                allowed.add(id(parent))
                parent = parent.parent

        def layer_filter(layer) -> bool:
            return id(layer) in allowed and layer.is_visible()

    box = _clip_box(viewport, full) if viewport is not None else full
    out = np.zeros((height, width, 4), np.uint8)
    if box is None:
        return out
    while True:
        color, _shape, alpha = composite(psd, color=1.0, alpha=0.0, viewport=box, layer_filter=layer_filter)
        patch = _to_rgba8(psd, color, alpha)
        if box == full or not _touches_inner_edge(patch[..., 3], box, full):
            break
        box = full
    out[box[1] : box[3], box[0] : box[2]] = patch
    return out


def plain_pixels(psd, layer) -> np.ndarray | None:
    """A plain pixel layer (the core's `why_not_plain`, with a normal blend, not clipped, visible, in an 8-bit RGB
    or greyscale document) read directly, without the compositor.

    Same result as `render(psd, [layer])` (tests check it on the corpus), several times faster. None when
    the layer is not plain.
    """
    if (
        why_not_plain(layer) is not None
        or psd.depth != 8
        or psd.color_mode.name not in ("RGB", "GRAYSCALE")
        or layer.blend_mode.name != "NORMAL"
        or layer.clipping
        or not layer.is_visible()
    ):
        return None
    parent = layer.parent
    while parent is not None and parent is not psd:
        if _why_not_expandable(parent, strict=True) not in (None, ISOLATED_INTERACTION):
            return None
        parent = parent.parent
    width, height = psd.width, psd.height
    out = np.zeros((height, width, 4), np.uint8)
    box = _clip_box(layer.bbox, canvas_box(width, height))
    if box is None:
        return out
    color = layer.numpy("color")
    shape = layer.numpy("shape")
    if color is None:
        return out
    if shape is None:
        shape = np.ones(color.shape[:2] + (1,), np.float32)
    alpha = shape * (layer.opacity / 255.0) * (layer.fill_opacity / 255.0)
    left, top = layer.bbox[0], layer.bbox[1]
    crop = (slice(box[1] - top, box[3] - top), slice(box[0] - left, box[2] - left))
    out[box[1] : box[3], box[0] : box[2]] = _to_rgba8(psd, color[crop], alpha[crop])
    return out


def _to_rgba8(psd, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """psd-tools' float planes in the document's colour space -> sRGB straight RGBA uint8 (rounded)."""
    from PIL import Image

    channels = color.shape[2]
    mode = {1: "L", 3: "RGB", 4: "CMYK"}.get(channels)
    if mode is None:
        raise Rejected("color-mode", f"rendered {channels} colour channels")
    data = (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if mode == "CMYK":
        data = 255 - data  # psd-tools keeps CMYK inverted, as stored
    image = Image.fromarray(data[..., 0] if mode == "L" else data, mode)
    transform = _icc_transform(psd, mode)
    if transform is not None:
        from PIL import ImageCms

        image = ImageCms.applyTransform(image, transform)
    rgb = np.asarray(image.convert("RGB"))
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = (np.clip(alpha[..., 0], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out[out[..., 3] == 0] = 0  # no colour under full transparency (psd-tools leaves its backdrop there)
    return out


_ICC_CACHE: dict = {}


def _icc_transform(psd, mode: str):
    """A cached ImageCms transform from the document's embedded profile to sRGB, or None."""
    from psd_tools.constants import Resource

    if Resource.ICC_PROFILE not in psd.image_resources:
        return None
    profile = bytes(psd.image_resources.get_data(Resource.ICC_PROFILE))
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


def profile_description(psd) -> str | None:
    """The embedded ICC profile's description (what the colours were converted from), or None."""
    from psd_tools.constants import Resource

    if Resource.ICC_PROFILE not in psd.image_resources:
        return None
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(bytes(psd.image_resources.get_data(Resource.ICC_PROFILE))))
        return ImageCms.getProfileDescription(profile).strip() or "unnamed profile"
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


def _clip_box(box, full):
    left, top = max(box[0], full[0]), max(box[1], full[1])
    right, bottom = min(box[2], full[2]), min(box[3], full[3])
    return (left, top, right, bottom) if right > left and bottom > top else None


def _touches_inner_edge(alpha: np.ndarray, box, full) -> bool:
    """Whether any non-transparent pixel lies on an edge of `box` that is inside the canvas."""
    return bool(
        (box[1] > full[1] and alpha[0].any())
        or (box[3] < full[3] and alpha[-1].any())
        or (box[0] > full[0] and alpha[:, 0].any())
        or (box[2] < full[2] and alpha[:, -1].any())
    )


def _union(boxes) -> tuple[int, int, int, int] | None:
    boxes = [b for b in boxes if b is not None and b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _pad(box, margin: int):
    return None if box is None else (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin)


def canvas_box(width: int, height: int) -> tuple[int, int, int, int]:
    return 0, 0, width, height


def _allow(layer, allowed: set[int]) -> None:
    allowed.add(id(layer))
    for clip in getattr(layer, "clip_layers", None) or ():
        _allow(clip, allowed)
    if layer.is_group():
        for child in layer:
            _allow(child, allowed)


def _source_node(index: int, depth: int, layer, action: str = "") -> SourceNode:
    """The inspect/meta record of one psd-tools layer."""
    return SourceNode(
        index,
        depth,
        str(layer.name),
        kind_of(layer),
        layer.blend_mode.name,
        tuple(int(v) for v in layer.bbox),
        bool(layer.visible),
        bool(layer.clipping),
        int(layer.opacity),
        action,
    )


def _walk(container, depth: int, nodes: list[SourceNode], units: list[Unit], strict: bool) -> None:
    for layer in container:
        index = len(nodes)
        node = _source_node(index, depth, layer)
        nodes.append(node)
        if layer.clipping:
            node.action = "clipped: baked into the layer it clips to"
            if layer.is_group():
                _mark_children(layer, depth + 1, nodes, "inside a clipped group")
            continue
        if not layer.is_visible():
            node.action = "hidden: dropped"
            if layer.is_group():
                _mark_children(layer, depth + 1, nodes, "inside a hidden group")
            continue
        members = [layer]
        if layer.is_group():
            why_not = _why_not_expandable(layer, strict)
            if why_not is None:
                node.action = "group expanded into its children"
                _walk(layer, depth + 1, nodes, units, strict)
                continue
            node.action = f"group flattened to one layer ({why_not})"
            first = len(nodes)
            _mark_children(layer, depth + 1, nodes, "flattened into its group")
            interacts = layer.blend_mode.name not in NORMAL_BLENDS or (
                layer.blend_mode.name == "PASS_THROUGH" and _has_interacting_descendant(layer, strict)
            )
            units.append(Unit(members, str(layer.name), "group", interacts, [index, *range(first, len(nodes))]))
            continue
        interacts = _interacts(layer, strict)
        node.action = "layer" if not interacts else "interacts with the layers beneath"
        if layer.has_clip_layers():
            node.action += " (with its clipping group baked in)"
        units.append(Unit(members, str(layer.name), node.kind, interacts, [index]))


def _mark_children(group, depth: int, nodes: list[SourceNode], action: str) -> None:
    for layer in group:
        nodes.append(_source_node(len(nodes), depth, layer, action))
        if layer.is_group():
            _mark_children(layer, depth + 1, nodes, action)


def _why_not_expandable(group, strict: bool) -> str | None:
    """None when a group can be replaced by its children without changing the image, else why not."""
    blend = group.blend_mode.name
    if blend not in NORMAL_BLENDS:
        return f"blend mode {blend.lower()}"
    if group.opacity < 255:
        return f"opacity {group.opacity}/255"
    if group.has_mask() and not group.mask.disabled:
        return "group mask"
    if group.has_vector_mask() and not group.vector_mask.disabled:
        return "group vector mask"
    if group.has_effects():
        return "group effects"
    if group.has_clip_layers(visible=True):
        return "layers clipped to the group"
    if blend == "NORMAL" and _has_interacting_descendant(group, strict):
        return ISOLATED_INTERACTION
    return None


def _has_interacting_descendant(group, strict: bool) -> bool:
    return any(
        layer.is_visible() and not layer.clipping and not layer.is_group() and _interacts(layer, strict)
        for layer in group.descendants()
    ) or any(
        layer.is_visible() and not layer.clipping and layer.is_group() and layer.blend_mode.name not in NORMAL_BLENDS
        for layer in group.descendants()
    )


def _interacts(layer, strict: bool = False) -> bool:
    """Whether the layer's result depends on what lies beneath it (so it cannot stand alone over it)."""
    if _is_adjustment(layer):
        return True
    if layer.blend_mode.name != "NORMAL":
        return True
    if strict and layer.has_effects():
        for effect in layer.effects:
            if effect.enabled and type(effect).__name__ in OUTER_EFFECTS:
                mode = getattr(effect, "blend_mode", None)
                if mode is not None and getattr(mode, "name", "NORMAL") != "NORMAL":
                    return True
    return False


def _is_adjustment(layer) -> bool:
    from psd_tools.api.layers import AdjustmentLayer

    return isinstance(layer, AdjustmentLayer)


def kind_of(layer) -> str:
    """pixel, shape, type, smartobject, fill, adjustment:<name>, group, ..."""
    from psd_tools.api.layers import AdjustmentLayer, FillLayer

    name = type(layer).__name__
    if isinstance(layer, AdjustmentLayer):
        return f"adjustment:{name}"
    if isinstance(layer, FillLayer):
        return f"fill:{name}"
    return layer.kind


def _resolve_interactions(psd, units: list[Unit], nodes: list[SourceNode], cache: dict) -> tuple[list[Unit], list[str]]:
    """Merge every interacting unit with the units beneath it that it changes (see the module docstring)."""
    out: list[Unit] = []
    merges: list[str] = []
    for unit in units:
        if not unit.interacts:
            out.append(unit)
            continue
        region = unit.region
        chosen = {i for i, below in enumerate(out) if _overlap(below.region, region)}
        changed = True
        while changed and chosen:
            changed = False
            low = min(chosen)
            for j in range(low + 1, len(out)):
                if j not in chosen and any(k < j and _overlap(out[j].region, out[k].region) for k in chosen):
                    chosen.add(j)
                    changed = True
        if not chosen:
            for i in unit.nodes:
                nodes[i].action += "; nothing beneath it to change: kept as rendered over transparency"
            unit.interacts = False
            out.append(unit)
            continue
        merged_units = [out[i] for i in sorted(chosen)]
        members = [m for u in merged_units for m in u.members] + unit.members
        merged = Unit(
            members,
            unit.name,
            "merged",
            False,
            [n for u in merged_units for n in u.nodes] + unit.nodes,
        )
        # rendered once at the end (a merge may be merged again); until then its region is the union of what
        # it covers (an adjustment changes only pixels that have content beneath it)
        own = [] if _is_adjustment(unit.members[-1]) else [region]
        merged.region = _union(own + [u.region for u in merged_units])
        names = [u.name for u in merged_units]
        merges.append(f"{unit.name!r} ({unit.kind}, {_blend_of(unit)}) merged with {len(names)} beneath: {names}")
        for i in unit.nodes:
            nodes[i].action += f"; merged with {len(names)} layer(s) beneath"
        out = [u for i, u in enumerate(out) if i not in chosen] + [merged]
    for unit in out:
        if unit.layer is None:
            unit.layer = render_layer(psd, unit.members, unit.name, _pad(unit.region, 2), cache)
    return out, merges


VERIFY_PSNR = 50.0  # a prefix of our stack must match psd-tools' render of the same layers this closely


def _verify(psd, units: list[Unit], nodes: list[SourceNode], cache: dict, merges: list[str]):
    """Merge, one at a time, the lowest layer whose alpha-over differs from psd-tools' render in context."""
    width, height = psd.width, psd.height
    start = 1
    while True:
        bad = None
        for k in range(start, len(units)):
            members = [m for unit in units[: k + 1] for m in unit.members]
            truth = render_layer(psd, members, "", None, cache)
            ours = composite([unit.layer for unit in units[: k + 1]], width, height)
            if psnr(ours, composite([truth], width, height)) < VERIFY_PSNR:
                bad = k
                break
        if bad is None:
            return units, merges
        unit = units[bad]
        unit.interacts = True
        unit.region = unit.region or canvas_box(width, height)
        for i in unit.nodes:
            nodes[i].action += "; does not stand alone over what is beneath (verified against psd-tools)"
        before = len(units)
        units, more = _resolve_interactions(psd, units, nodes, cache)
        merges = merges + more
        if len(units) == before:  # nothing beneath overlaps it: cannot do better
            return units, merges
        start = max(1, bad - (before - len(units)))


def _blend_of(unit: Unit) -> str:
    layer = unit.members[-1]
    return "adjustment" if _is_adjustment(layer) else layer.blend_mode.name.lower()


def _overlap(a, b) -> bool:
    if a is None or b is None:
        return False
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _texts(psd) -> list[str]:
    out = []
    for layer in psd.descendants():
        if layer.kind == "type" and layer.is_visible():
            try:
                text = str(layer.text).strip()
            except Exception:  # a damaged text record: the name still describes the layer
                continue
            if text:
                out.append(text)
    return out


def _stored_to_srgb(psd, image) -> np.ndarray:
    """The stored composite in sRGB: H x W x 4 when it has alpha, H x W x 3 when it is flattened (opaque)."""
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    base = image.convert({"RGBA": "RGB", "LA": "L", "1": "L", "P": "RGB", "PA": "RGB"}.get(image.mode, image.mode))
    transform = _icc_transform(psd, base.mode) if base.mode in ("L", "RGB", "CMYK") else None
    if transform is not None:
        from PIL import ImageCms

        base = ImageCms.applyTransform(base, transform)
    rgb = np.asarray(base.convert("RGB"))
    if alpha is None:
        return rgb
    return np.concatenate([rgb, np.asarray(alpha)[..., None]], axis=2)
