"""A PSD file -> an alpha-over `LayerStack` plus the reference composite to check it against.

The walk and merge rules are `layered.psd.tree`, the rendering `layered.psd.render`, the colours
`layered.psd.color`. Two readings share this code: the dataset builder's (hidden layers dropped, opacity
baked into alpha) and the editor's (`layered.psd.reader`: hidden layers kept hidden, opacity kept editable).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator

import numpy as np

from layered.fileio import MAX_PIXELS
from layered.psd import header as psd_header
from layered.psd.color import profile_description
from layered.psd.errors import Rejected, short
from layered.psd.fidelity import psnr
from layered.psd.header import CONVERTIBLE_MODES, PsdHeader
from layered.psd.layers import interacts, is_adjustment, texts
from layered.psd.render import (
    canvas_box,
    content_box,
    pad,
    plain_layer,
    plain_pixels,
    reference_composite,
    render_layer,
    union,
)
from layered.psd.tree import SourceNode, resolve_interactions, verify, walk
from layered.stack import Layer, LayerStack, composite


@dataclasses.dataclass(frozen=True)
class Reading:
    """How the layers are read: the builder's defaults, or the editor's (`EDITOR`)."""

    keep_hidden: bool = False  # hidden layers kept as hidden layers instead of dropped
    # a plain layer's opacity and fill multiplied into its alpha, pixels cropped to the canvas and their content
    # (else: read at its own offset and extent, off-canvas pixels kept, opacity kept editable)
    bake_opacity: bool = True


EDITOR = Reading(keep_hidden=True, bake_opacity=False)


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
    notes: list[str] = dataclasses.field(default_factory=list)  # hidden layers left out (editor reading)


def open_psd(path: str | os.PathLike, max_pixels: int = MAX_PIXELS):
    """The PSD core's checked open, for the colour modes converted to RGBA; (PSDImage, header)."""
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
    path: str | os.PathLike, max_pixels: int = MAX_PIXELS, min_psnr: float | None = None, reading: Reading = Reading()
) -> Iterator[Extraction]:
    """Extractions from finest to most conservative, for a caller that stops at the first good enough one."""
    psd, header = open_psd(path, max_pixels)
    yield from variants_of(psd, header, min_psnr, reading)


def variants_of(psd, header: PsdHeader, min_psnr: float | None = None, reading: Reading = Reading(), cache=None):
    """`extract_variants` of an opened document.

    1. the default rules; then, only if the caller asks for more and psd-tools' own full composite reaches
       `min_psnr` (otherwise no split of psd-tools renders can, and the first extraction carries
       `psd_tools_psnr` to say so):
    2. strict effects (only when it differs from 1);
    3. verified: strict rules, then every prefix of the stack is checked against psd-tools' render of the
       same source layers, and a layer that does not stand alone over what is beneath (for instance in a
       32-bit document, which blends in linear light) is merged with what it overlaps until all agree.
    One parse, shared renders (in `cache`, a dict the caller may pass to reuse them).
    """
    logging.getLogger("psd_tools").setLevel(logging.CRITICAL)
    cache = {} if cache is None else cache
    first = _guarded(_extract, psd, header, False, cache, check=False, reading=reading)
    yield first
    if min_psnr is not None:
        full = _guarded(render_layer, psd, None, "", None, cache)
        first.psd_tools_psnr = psnr(composite([full], psd.width, psd.height), first.reference)
        if first.psd_tools_psnr < min_psnr:
            return
    if first.has_blended_effects:
        yield _guarded(_extract, psd, header, True, cache, check=False, reading=reading)
    yield _guarded(_extract, psd, header, True, cache, check=True, reading=reading)


def guarded_reference(psd, cache: dict) -> tuple[np.ndarray, str]:
    """The document's reference composite (cached in `cache`), psd-tools failures as rejections."""
    if "reference" not in cache:
        cache["reference"] = _guarded(reference_composite, psd)
    return cache["reference"]


def _guarded(function, *args, **kwargs):
    """Run a rendering step; psd-tools failures become rejections with a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)
    except Rejected:
        raise
    except MemoryError:
        raise Rejected("out-of-memory", "ran out of memory while rendering") from None
    except Exception as exc:
        raise Rejected("render-error", f"psd-tools failed to render ({type(exc).__name__}: {short(exc)})") from None


def _extract(psd, header: PsdHeader, strict_effects: bool, cache: dict, *, check: bool, reading: Reading) -> Extraction:
    width, height = psd.width, psd.height
    if len(psd) == 0:
        raise Rejected("no-layers", "flat document: no layer records to decompose")
    nodes, units, notes = walk(psd, strict_effects, reading.keep_hidden)
    reference, reference_kind = guarded_reference(psd, cache)
    for unit in units:
        unit.layer = _unit_layer(psd, unit, cache, reading)
        adjustment = is_adjustment(unit.members[0])
        unit.region = canvas_box(width, height) if adjustment else content_box(unit.layer, width, height)
    units, merges = resolve_interactions(psd, units, nodes, cache)
    if check:
        units, merges = verify(psd, units, nodes, cache, merges)
    blended_effects = any(
        layer.is_visible() and not layer.is_group() and not interacts(layer) and interacts(layer, True)
        for layer in psd.descendants()
    )
    layers, kinds, layer_nodes = [], [], []
    for unit in units:
        layer = unit.layer.replace(name=unit.name, visible=unit.visible)
        if layer.is_empty and not (reading.keep_hidden and unit.kind == "pixel"):  # the editor keeps empty layers
            for i in unit.nodes:
                nodes[i].action += "; dropped: renders empty"
            continue
        layers.append(layer)
        kinds.append(unit.kind)
        layer_nodes.append(unit.nodes)
    if not any(layer.visible for layer in layers):
        raise Rejected("no-visible-layers", "no visible layer renders any pixel")
    return Extraction(
        header,
        LayerStack(width, height, tuple(layers)),
        kinds,
        layer_nodes,
        nodes,
        merges,
        texts(psd) if not reading.keep_hidden else [],
        reference,
        reference_kind,
        blended_effects,
        rules="verified" if check else "strict-effects" if strict_effects else "default",
        color_profile=profile_description(psd),
        notes=notes,
    )


def _unit_layer(psd, unit, cache: dict, reading: Reading) -> Layer:
    """A unit's own layer: a plain pixel layer read directly, anything else rendered by psd-tools."""
    member = unit.members[0]
    if len(unit.members) == 1 and not reading.bake_opacity:
        layer = plain_layer(psd, member, unit.name)
        if layer is not None:
            return layer
    if len(unit.members) == 1:
        plain = plain_pixels(psd, member)
        if plain is not None:
            return Layer.from_canvas(plain, unit.name)
    box = None if is_adjustment(member) else pad(union(m.bbox for m in unit.members), 2)
    return render_layer(psd, unit.members, unit.name, box, cache, shown=unit.shown)
