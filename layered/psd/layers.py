"""Layers: which psd-tools layers are plain pixels, whose stored channels are exactly what they show."""

from __future__ import annotations


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
