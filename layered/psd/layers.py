"""Layers (psd-tools' API level): what one layer or group is, and whether it can stand alone over what is beneath.

These are the merge rules' questions; the walk that applies them is `layered.psd.tree`.
"""

from __future__ import annotations

NORMAL_BLENDS = ("NORMAL", "PASS_THROUGH")
OUTER_EFFECTS = ("DropShadow", "OuterGlow", "Stroke")
ISOLATED_INTERACTION = "isolated group with a blend mode or adjustment inside"


def why_not_plain(layer) -> str | None:
    """Why the stored channels of `layer` are not what it shows (None for a plain pixel layer).

    A plain layer shows its channels times its opacity and fill opacity (equal in effect without layer
    effects); its blend mode, visibility and the groups above it are for the caller to weigh.
    """
    if layer.kind != "pixel":
        return f"{layer.kind} layer"
    if layer.has_clip_layers():
        return "clipping layers merged in"
    if layer.has_mask() or layer.has_vector_mask():
        return "mask applied"
    if layer.has_effects() and any(effect.enabled for effect in layer.effects):  # disabled ones draw nothing
        return "layer effects applied"
    return None


def why_not_expandable(group, strict: bool) -> str | None:
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
    if blend == "NORMAL" and has_interacting_descendant(group, strict):
        return ISOLATED_INTERACTION
    return None


def has_interacting_descendant(group, strict: bool) -> bool:
    """Whether a visible layer or group inside `group` blends with what lies beneath it."""
    return any(
        layer.is_visible() and not layer.clipping and not layer.is_group() and interacts(layer, strict)
        for layer in group.descendants()
    ) or any(
        layer.is_visible() and not layer.clipping and layer.is_group() and layer.blend_mode.name not in NORMAL_BLENDS
        for layer in group.descendants()
    )


def interacts(layer, strict: bool = False) -> bool:
    """Whether the layer's result depends on what lies beneath it (so it cannot stand alone over it)."""
    if is_adjustment(layer):
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


def is_adjustment(layer) -> bool:
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


def texts(psd) -> list[str]:
    """The contents of the visible type layers, in order (a damaged text record is skipped)."""
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
