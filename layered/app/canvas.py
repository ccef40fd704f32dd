"""The editor's canvas and layer panel: one `gr.HTML` whose value describes the document, drawn in the browser.

The browser draws each layer's downscaled image at its offset and does selection, dragging, handles, the
panel and the keyboard itself (`layered/assets/editor/canvas.js`); every finished gesture comes back as one
`layer_edit` event, `{"op": ..., ...}` in image pixels, which the UI turns into one edit of the session. The
value sends each preview image once per session (`EditorSession.sent`); later values name it by id only.
"""

from __future__ import annotations

import itertools
from importlib import resources

import gradio as gr
import numpy as np

from layered.app import render
from layered.app.session import EditorSession
from layered.stack import Layer

EDIT_EVENT = "layer_edit"  # the custom event the canvas triggers (also named in canvas.js)
_versions = itertools.count(1)


def _asset(name: str) -> str:
    return resources.files("layered").joinpath("assets", "editor", name).read_text(encoding="utf-8")


TEMPLATE = """
<div class="le-root">
  <div class="le-main">
    <div class="le-toolbar">
      <button type="button" class="le-before" data-role="before" aria-pressed="false">Before / after</button>
      <span class="le-zoom" data-role="zoom"></span>
      <span class="le-hint">Click selects · drag moves · arrows nudge · Del deletes · Ctrl+D duplicates ·
        Ctrl+Z undoes · H hides · Esc deselects</span>
    </div>
    <div id="layer-canvas" class="le-stage" tabindex="0" role="application" aria-label="Layer canvas">
      <div class="le-board" data-role="board"></div>
      <div class="le-empty" data-role="empty">Open an image to start.</div>
    </div>
  </div>
  <div class="le-panel" id="layer-panel">
    <div class="le-panel-title">Layers</div>
    <div class="le-rows" data-role="rows"></div>
  </div>
</div>
"""


def layer_record(index: int, layer: Layer) -> dict:
    """Layer `index` as plain data (as in layers.json, plus its index): what the canvas and the API show."""
    return {
        "index": index,
        "name": layer.name,
        "kind": layer.kind,
        "x": layer.x,
        "y": layer.y,
        "width": layer.width,
        "height": layer.height,
        "opacity": round(layer.opacity, 4),
        "visible": layer.visible,
    }


def canvas_value(session: EditorSession, before: bool = False) -> dict:
    """What the browser needs to draw the document: size, preview scale, layers (bottom-first), new images."""
    stack = session.stack
    value = {"version": next(_versions), "width": 0, "height": 0, "factor": 1.0, "layers": [], "images": {}}
    value.update(selected=None, before=bool(before), original=None)
    if stack is None:
        return value
    factor = render.preview_factor(stack.width, stack.height)
    value.update(width=stack.width, height=stack.height, factor=factor, selected=session.selected)
    unsent: dict[str, np.ndarray] = {}

    def reference(pixels) -> str:
        key, small = session.previews.get(pixels, factor)
        if key not in session.sent:
            unsent[key] = small
        return key

    for index, layer in enumerate(stack.layers):
        image = None if layer.is_empty else reference(layer.pixels)
        value["layers"].append({**layer_record(index, layer), "image": image})
    if session.original is not None:
        value["original"] = reference(session.original)
    value["images"] = session.previews.data_urls(list(unsent.items()))
    session.sent.update(unsent)
    return value


def make_canvas() -> gr.HTML:
    """The canvas component (its value is `canvas_value`); edits arrive as `EDIT_EVENT` events."""
    return gr.HTML(
        None,
        html_template=TEMPLATE,
        css_template=_asset("canvas.css"),
        js_on_load=_asset("canvas.js"),
        elem_id="editor-canvas",
        apply_default_css=False,
    )
