"""The walk (psd-tools' API level): a PSD layer tree -> units, each rendered into one layer of an alpha-over stack.

Rules, applied while walking the layer tree bottom-first:
- pixel, shape, type, smart-object and fill layers become one unit each, rendered with their masks, vector
  masks, effects, opacity and fill opacity;
- a clipping group (a base layer and the layers clipped to it) is baked into one unit;
- a group with normal or pass-through blending, full opacity, no mask, no effects and nothing clipped
  to it is expanded into its children; any other group is flattened to one unit named after it (an
  isolated group with an adjustment or a blend mode inside is flattened too: what they change stays in it);
- a unit that interacts with what lies beneath it (blend mode other than normal, an adjustment layer, an
  outer effect with a blend mode) is merged with the units it changes: those beneath it that overlap its
  region, plus, transitively, the units between them that overlap those. The merge is rendered by psd-tools
  from the original layers, so the blend is exact, and units it leaves alone stay separate (order is kept
  because the ones it jumps over do not overlap the merged ones);
- hidden layers are dropped, or with `keep_hidden` (the editor's reading) kept as hidden units that never
  merge (a hidden adjustment is dropped either way: it has no pixels).
"""

from __future__ import annotations

import dataclasses

from layered.psd.layers import (
    NORMAL_BLENDS,
    has_interacting_descendant,
    interacts,
    is_adjustment,
    kind_of,
    why_not_expandable,
)
from layered.psd.render import canvas_box, overlap, pad, render_layer, union
from layered.stack import Layer, composite


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
    visible: bool = True  # False: a hidden layer kept for the editor (rendered as if shown)
    shown: tuple[int, ...] = ()  # ids of the hidden source layers to draw when rendering it


def walk(psd, strict: bool, keep_hidden: bool = False) -> tuple[list[SourceNode], list[Unit], list[str]]:
    """(source nodes, units bottom-first, notes on hidden layers left out) of the whole document."""
    state = _Walk(strict, keep_hidden)
    _walk(psd, 0, state, hidden=False)
    return state.nodes, state.units, state.notes


@dataclasses.dataclass
class _Walk:
    """The walk's rules and what it collects."""

    strict: bool
    keep_hidden: bool
    nodes: list[SourceNode] = dataclasses.field(default_factory=list)
    units: list[Unit] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _walk(container, depth: int, state: _Walk, *, hidden: bool) -> None:
    nodes, units, notes, strict, keep_hidden = state.nodes, state.units, state.notes, state.strict, state.keep_hidden
    for layer in container:
        index = len(nodes)
        node = source_node(index, depth, layer)
        nodes.append(node)
        if layer.clipping:
            node.action = "clipped: baked into the layer it clips to"
            if layer.is_group():
                _mark_children(layer, depth + 1, nodes, "inside a clipped group")
            continue
        is_hidden = hidden or not layer.visible
        if is_hidden and (not keep_hidden or is_adjustment(layer)):
            node.action = "hidden: dropped"
            if keep_hidden:
                notes.append(f"hidden adjustment layer {layer.name!r} left out")
            if layer.is_group():
                _mark_children(layer, depth + 1, nodes, "inside a hidden group")
            continue
        shown = _hidden_chain(layer) if is_hidden else ()
        if layer.is_group():
            why_not = why_not_expandable(layer, strict)
            if why_not is None:
                node.action = "group expanded into its children"
                _walk(layer, depth + 1, state, hidden=is_hidden)
                continue
            node.action = f"group flattened to one layer ({why_not})"
            first = len(nodes)
            _mark_children(layer, depth + 1, nodes, "flattened into its group")
            blended = layer.blend_mode.name not in NORMAL_BLENDS or (
                layer.blend_mode.name == "PASS_THROUGH" and has_interacting_descendant(layer, strict)
            )
            unit = Unit(
                [layer], str(layer.name), "group", blended and not is_hidden, [index, *range(first, len(nodes))]
            )
            unit.visible, unit.shown = not is_hidden, shown
            units.append(unit)
            continue
        blended = interacts(layer, strict) and not is_hidden
        node.action = (
            "hidden: kept hidden" if is_hidden else "layer" if not blended else "interacts with the layers beneath"
        )
        if layer.has_clip_layers():
            node.action += " (with its clipping group baked in)"
        units.append(Unit([layer], str(layer.name), node.kind, blended, [index], visible=not is_hidden, shown=shown))


def _hidden_chain(layer) -> tuple[int, ...]:
    """The ids of `layer` and of its hidden ancestors: what must be drawn for it to show."""
    chain = []
    while layer is not None and layer.parent is not None:
        if not layer.visible:
            chain.append(id(layer))
        layer = layer.parent
    return tuple(chain)


def _mark_children(group, depth: int, nodes: list[SourceNode], action: str) -> None:
    for layer in group:
        nodes.append(source_node(len(nodes), depth, layer, action))
        if layer.is_group():
            _mark_children(layer, depth + 1, nodes, action)


def source_node(index: int, depth: int, layer, action: str = "") -> SourceNode:
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


def resolve_interactions(psd, units: list[Unit], nodes: list[SourceNode], cache: dict) -> tuple[list[Unit], list[str]]:
    """Merge every interacting unit with the units beneath it that it changes (see the module docstring)."""
    out: list[Unit] = []
    merges: list[str] = []
    for unit in units:
        if not unit.interacts:
            out.append(unit)
            continue
        region = unit.region
        chosen = {i for i, below in enumerate(out) if below.visible and overlap(below.region, region)}
        changed = True
        while changed and chosen:
            changed = False
            low = min(chosen)
            for j in range(low + 1, len(out)):
                if (
                    j not in chosen
                    and out[j].visible
                    and any(k < j and overlap(out[j].region, out[k].region) for k in chosen)
                ):
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
        merged = Unit(members, unit.name, "merged", False, [n for u in merged_units for n in u.nodes] + unit.nodes)
        # rendered once at the end (a merge may be merged again); until then its region is the union of what
        # it covers (an adjustment changes only pixels that have content beneath it)
        own = [] if is_adjustment(unit.members[-1]) else [region]
        merged.region = union(own + [u.region for u in merged_units])
        names = [u.name for u in merged_units]
        merges.append(f"{unit.name!r} ({unit.kind}, {blend_of(unit)}) merged with {len(names)} beneath: {names}")
        for i in unit.nodes:
            nodes[i].action += f"; merged with {len(names)} layer(s) beneath"
        out = [u for i, u in enumerate(out) if i not in chosen] + [merged]
    for unit in out:
        if unit.layer is None:
            unit.layer = render_layer(psd, unit.members, unit.name, pad(unit.region, 2), cache)
    return out, merges


VERIFY_PSNR = 50.0  # a prefix of our stack must match psd-tools' render of the same layers this closely


def verify(psd, units: list[Unit], nodes: list[SourceNode], cache: dict, merges: list[str]):
    """Merge, one at a time, the lowest unit whose alpha-over differs from psd-tools' render in context."""
    from layered.psd.fidelity import psnr

    width, height = psd.width, psd.height
    start = 1
    while True:
        bad = None
        for k in range(start, len(units)):
            if not units[k].visible:
                continue
            members = [m for unit in units[: k + 1] if unit.visible for m in unit.members]
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
        units, more = resolve_interactions(psd, units, nodes, cache)
        merges = merges + more
        if len(units) == before:  # nothing beneath overlaps it: cannot do better
            return units, merges
        start = max(1, bad - (before - len(units)))


def blend_of(unit: Unit) -> str:
    layer = unit.members[-1]
    return "adjustment" if is_adjustment(layer) else layer.blend_mode.name.lower()
