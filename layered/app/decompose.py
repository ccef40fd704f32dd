"""The editor's side of `layered.decompose`: whole image or one layer (recursive), with progress and Cancel.

Settings, the pipeline cache and the decomposers live in `layered.decompose`, the layer-count rule in `layered.limits`;
this module only names the editor's two actions. `cancel` (a threading.Event) stops a run at the next step.
"""

from __future__ import annotations

import threading

import numpy as np

from layered.decompose import DEFAULT_METHOD, METHODS, Cancelled, Progress, Settings, decomposer
from layered.layer_tools import split_layer
from layered.limits import MAX_LAYERS
from layered.stack import LayerStack

__all__ = [
    "DEFAULT_METHOD",
    "MAX_LAYERS",
    "METHODS",
    "Cancelled",
    "Progress",
    "Settings",
    "decompose_image",
    "decompose_layer",
]


def decompose_image(rgba: np.ndarray, settings: Settings, progress: Progress, cancel: threading.Event) -> LayerStack:
    """Split a whole image into layers (each named, "layer i" where the decomposer gave no name)."""
    stack = decomposer(settings, progress=progress, cancel=cancel)(rgba)
    names = [layer.name or f"layer {i}" for i, layer in enumerate(stack.layers)]
    return stack.replace(layers=tuple(layer.replace(name=n) for layer, n in zip(stack.layers, names, strict=True)))


def decompose_layer(
    stack: LayerStack, index: int, settings: Settings, progress: Progress, cancel: threading.Event
) -> LayerStack:
    """Split layer `index` of `stack` again and splice the parts in its place (the other layers untouched)."""
    return split_layer(stack, index, decomposer(settings, progress=progress, cancel=cancel, keep_alpha=True))
