"""The Gradio Blocks of the web layer editor: open, decompose, edit on the canvas or in the side panel, export.

The canvas and its layer panel (`layered/app/canvas.py`) are the centre; the side panel keeps every form
control. Every event handler takes the session's `EditorSession` (a `gr.State`, so browser sessions never
share layers), does one thing, and returns the whole view: the canvas, the flattened preview, the selected
layer's controls, the layer data as JSON and a status line that says what the edit did. Bad input never
raises out of a handler: it shows a warning toast and the status line, and the layers stay as they were.
Every form event has an `api_name`, so `gradio_client` can drive the editor; the canvas's gestures arrive as
one `layer_edit` event whose data names the edit.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np

from layered import edits
from layered.app import canvas as canvas_view
from layered.app import decompose as dec
from layered.app import render
from layered.app.session import EXPORT_CHOICES, EditorSession, load_layer_image
from layered.decompose import MIN_STEPS
from layered.errors import LayeredError
from layered.formats import IMAGE_SUFFIXES, UPLOAD_SUFFIXES

log = logging.getLogger("layered.app")

LAYER_CHOICES = ["auto"] + [str(n) for n in range(1, dec.MAX_LAYERS + 1)]
BEFORE, AFTER = "original", "edited"
CSS = """
#status p { margin: 0; }
#status.error, #status .error { color: var(--error-text-color); }
"""


# ---- the view: everything a handler returns ---------------------------------------------------------


class View(NamedTuple):
    """What every editing handler returns, by name. `build_app` makes a View of the output components
    (`view_outputs`), so each value goes to the component of the same field, whatever the order."""

    session: Any  # the gr.State: the EditorSession
    canvas: Any  # the canvas and layer panel (`canvas.canvas_value`)
    preview: Any  # the flattened composite over a checkerboard
    layer: Any  # the selected-layer dropdown (a gr.update with its choices)
    visible: Any
    opacity: Any
    name: Any
    x: Any
    y: Any
    info: Any  # the layer data as JSON
    status: Any
    compare: Any


def _session(session: EditorSession | None) -> EditorSession:
    return session if isinstance(session, EditorSession) else EditorSession()


def layer_label(stack, index: int) -> str:
    """The selected-layer dropdown's text for layer `index`."""
    layer = stack.layers[index]
    flags = "" if layer.visible else " (hidden)"
    return f"{index}: {layer.name or 'layer'}{flags}"


def layer_data(session: EditorSession) -> dict:
    """The current stack as plain data (bottom-first, like layers.json) for the JSON panel and API clients."""
    stack = session.stack
    if stack is None:
        return {"width": 0, "height": 0, "layers": [], "selected": None, "can_undo": False, "can_redo": False}
    layers = [canvas_view.layer_record(i, layer) for i, layer in enumerate(stack.layers)]
    selected = session.selected if stack.layers else None
    return {
        "width": stack.width,
        "height": stack.height,
        "layers": layers,
        "selected": selected,
        "can_undo": session.can_undo,
        "can_redo": session.can_redo,
    }


NO_LAYER = {"visible": True, "opacity": 1.0, "name": "", "x": 0, "y": 0}  # the controls with no layer selected


def view(session: EditorSession, status: str = "", before: bool = False) -> View:
    """The outputs of every editing handler: a `View`, sent to the components of `view_outputs` in `build_app`."""
    stack = session.stack
    if stack is None:
        empty = gr.update(choices=[], value=None)
        return View(
            session=session,
            canvas=canvas_view.canvas_value(session),
            preview=None,
            layer=empty,
            **NO_LAYER,
            info=layer_data(session),
            status=status,
            compare=AFTER,
        )
    before = before and session.original is not None
    if before:
        image = render.preview(session.original, render.FLAT_SIDE)
    else:  # from cached downscaled layers: a big document is never flattened at full size here
        factor = render.preview_factor(stack.width, stack.height, render.FLAT_SIDE)
        image = render.composite_of_previews(stack, session.previews, factor)
    order = list(reversed(range(len(stack))))  # the dropdown lists layers top-first
    choices = [(layer_label(stack, i), i) for i in order]
    controls = NO_LAYER
    if stack.layers and session.selected is not None:
        layer = stack.layers[session.selected]
        controls = {"visible": layer.visible, "opacity": layer.opacity, "name": layer.name, "x": layer.x, "y": layer.y}
    return View(
        session=session,
        canvas=canvas_view.canvas_value(session, before=before),
        preview=image,
        layer=gr.update(choices=choices, value=session.selected if stack.layers else None),
        **controls,
        info=layer_data(session),
        status=status,
        compare=BEFORE if before else AFTER,
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, (LayeredError, ValueError, IndexError, TypeError)):
        return str(exc) or type(exc).__name__
    log.exception("editor handler failed")
    return f"internal error: {type(exc).__name__}: {exc}"


def respond(session: EditorSession | None, action) -> View:
    """Run `action(session) -> status text` and return the view; on any error keep the layers, show why."""
    session = _session(session)
    try:
        status = action(session)
    except Exception as exc:  # shown to the user: the app keeps serving and the session keeps its layers
        message = _message(exc)
        gr.Warning(message)
        return view(session, f"**Error:** {message}")
    return view(session, status)


# ---- handlers ------------------------------------------------------------------------------------------


def refresh(session):
    """The view of the session as it is (page load)."""
    return view(_session(session))


def open_file(session, file):
    """Open an uploaded image (one layer), PSD/PSB or ORA (its layers)."""

    def act(s: EditorSession) -> str:
        if not file:
            return ""  # the upload was cleared: keep the document
        stack = s.open_file(file)
        kind = "layers" if len(stack) != 1 else "layer"
        return f"Opened **{Path(file).name}**: {stack.width} x {stack.height}, {len(stack)} {kind}."

    return respond(session, act)


def _progress(progress) -> dec.Progress:
    def report(fraction: float, text: str) -> None:
        if progress is not None:
            progress(min(max(fraction, 0.0), 1.0), desc=text)

    return report


# The Decompose panel's inputs, in the order `build_app` wires its components (`Settings` field names).
PANEL_FIELDS = ("method", "model", "layers", "steps", "seed", "guidance", "resolution", "prompt")


def decompose(  # noqa: PLR0913, PLR0917 (Gradio passes one positional argument per input component)
    session,
    method,
    model,
    layers,
    steps,
    seed,
    guidance,
    resolution,
    prompt,
    progress=gr.Progress(),  # noqa: B008 (Gradio's convention for a progress bar)
):
    """Split the opened image into layers (classic method or a diffusion model)."""

    def act(s: EditorSession) -> str:
        settings = _panel_settings(method, model, layers, steps, seed, guidance, resolution, prompt)
        s.require_stack()
        s.cancel.clear()
        try:
            stack = dec.decompose_image(s.original, settings, _progress(progress), s.cancel)
        except dec.Cancelled:
            return "Decomposition cancelled; the layers are unchanged."
        if s.cancel.is_set():
            return "Decomposition cancelled; the layers are unchanged."
        s.push(stack, selected=len(stack) - 1)
        return f"Decomposed into {len(stack)} layers ({settings.method})."

    return respond(session, act)


def _panel_settings(*values) -> dec.Settings:
    """The Decompose panel's values, in the order of its components (`PANEL_FIELDS`), as checked settings."""
    return dec.Settings(**dict(zip(PANEL_FIELDS, values, strict=True)))


def decompose_layer(  # noqa: PLR0913, PLR0917 (Gradio passes one positional argument per input component)
    session,
    index,
    method,
    model,
    layers,
    steps,
    seed,
    guidance,
    resolution,
    prompt,
    progress=gr.Progress(),  # noqa: B008
):
    """Split the selected layer again (recursive decomposition); the other layers are untouched."""

    def act(s: EditorSession) -> str:
        settings = _panel_settings(method, model, layers, steps, seed, guidance, resolution, prompt)
        i = s.check_index(index)
        before = s.require_stack()
        s.cancel.clear()
        try:
            stack = dec.decompose_layer(before, i, settings, _progress(progress), s.cancel)
        except dec.Cancelled:
            return "Decomposition cancelled; the layers are unchanged."
        if s.cancel.is_set():
            return "Decomposition cancelled; the layers are unchanged."
        parts = len(stack) - len(before) + 1
        s.push(stack, selected=i + parts - 1)
        return f"Split layer {i} into {parts} layers."

    return respond(session, act)


def cancel(session):
    """Stop a running decomposition of this session (the queue cancels the event too)."""
    session = _session(session)
    session.cancel.set()
    return "Cancelling..."


def select_layer(session, index):
    """Show the controls of layer `index` (bottom-first)."""

    def act(s: EditorSession) -> str:
        s.select(s.check_index(index))
        return ""

    return respond(session, act)


def deselect(session):
    """Clear the selection (Escape, or a click on empty canvas)."""

    def act(s: EditorSession) -> str:
        s.deselect()
        return ""

    return respond(session, act)


def _edit(session, index, fn, done, select=None):
    """Apply `fn(stack, i)` to layer `index`; `select(i)` picks the layer selected afterwards (default: i).
    `done` is the status: a format string of `i`, or `done(session, i)` called after the edit."""

    def act(s: EditorSession) -> str:
        i = s.check_index(index)
        s.edit(i, fn, select=select(i) if select else None)
        return done(s, i) if callable(done) else done.format(i=i)

    return respond(session, act)


def set_visible(session, index, visible):
    done = "Layer {i} " + ("shown." if visible else "hidden.")
    return _edit(session, index, lambda st, i: edits.set_visible(st, i, bool(visible)), done)


def set_opacity(session, index, opacity):
    def done(s: EditorSession, i: int) -> str:
        return f"Layer {i} opacity {s.stack.layers[i].opacity:.0%}."

    return _edit(session, index, lambda st, i: edits.set_opacity(st, i, _number(opacity, "opacity")), done)


def _moved(s: EditorSession, i: int) -> str:
    return f"Moved layer {i} to ({s.stack.layers[i].x}, {s.stack.layers[i].y})."


def _scaled(s: EditorSession, i: int) -> str:
    return f"Scaled layer {i} to {s.stack.layers[i].width} x {s.stack.layers[i].height}."


def move(session, index, x, y):
    return _edit(session, index, lambda st, i: edits.move_to(st, i, _whole(x, "x"), _whole(y, "y")), _moved)


def move_by(session, index, dx, dy):
    """Shift a layer by (dx, dy) image pixels (a drag or a nudge on the canvas)."""

    def done(_s: EditorSession, i: int) -> str:
        return f"Moved layer {i} by ({_whole(dx, 'dx')}, {_whole(dy, 'dy')})."

    return _edit(session, index, lambda st, i: edits.move(st, i, _whole(dx, "dx"), _whole(dy, "dy")), done)


def scale(session, index, factor):
    return _edit(session, index, lambda st, i: edits.scale(st, i, _number(factor, "scale")), _scaled)


def scale_about(session, index, sx, sy, ax, ay):  # noqa: PLR0913, PLR0917 (one value per handle coordinate)
    """Resize a layer by (sx, sy) keeping canvas point (ax, ay) fixed (a corner handle on the canvas)."""

    def fn(st, i):
        anchor = (_number(ax, "anchor x"), _number(ay, "anchor y"))
        return edits.scale(st, i, _number(sx, "sx"), _number(sy, "sy"), anchor=anchor)

    return _edit(session, index, fn, _scaled)


def rotate(session, index, degrees):
    def done(_s: EditorSession, i: int) -> str:
        return f"Rotated layer {i} by {_number(degrees, 'angle'):g}°."

    return _edit(session, index, lambda st, i: edits.rotate(st, i, _number(degrees, "angle")), done)


def reorder(session, index, position):
    """Move a layer so that it ends at `position` (bottom-first), as a drop in the layer panel does."""

    def act(s: EditorSession) -> str:
        i = s.check_index(index)
        j = s.check_index(position)
        if i == j:
            return ""
        s.edit(i, lambda st, k: edits.reorder(st, k, j), select=j)
        return f"Moved layer {i} to position {j} (0 = bottom)."

    return respond(session, act)


def recolor(session, index, hue, saturation, brightness):
    def fn(st, i):
        return edits.recolor(
            st,
            i,
            hue=_number(hue, "hue"),
            saturation=_number(saturation, "saturation"),
            brightness=_number(brightness, "brightness"),
        )

    return _edit(session, index, fn, "Recoloured layer {i}.")


def rename(session, index, name):
    def fn(st, i):
        text = str(name or "").strip()
        if not text:
            raise LayeredError("a layer name cannot be empty")
        return edits.rename(st, i, text)

    return _edit(session, index, fn, lambda s, i: f"Renamed layer {i} to {s.stack.layers[i].name!r}.")


def raise_layer(session, index):
    def act(s: EditorSession) -> str:
        i = s.check_index(index)
        if i == len(s.stack) - 1:
            return f"Layer {i} is already at the top."
        s.edit(i, lambda st, j: edits.reorder(st, j, j + 1), select=i + 1)
        return f"Moved layer {i} up."

    return respond(session, act)


def lower_layer(session, index):
    def act(s: EditorSession) -> str:
        i = s.check_index(index)
        if i == 0:
            return "Layer 0 is already at the bottom."
        s.edit(i, lambda st, j: edits.reorder(st, j, j - 1), select=i - 1)
        return f"Moved layer {i} down."

    return respond(session, act)


def duplicate(session, index):
    return _edit(session, index, edits.duplicate, "Duplicated layer {i}.", select=lambda i: i + 1)


def delete(session, index):
    return _edit(session, index, edits.delete, "Deleted layer {i}.", select=lambda i: max(i - 1, 0))


def merge_down(session, index):
    return _edit(session, index, edits.merge_down, "Merged layer {i} into the layer below.", select=lambda i: i - 1)


def replace(session, index, file):
    def act(s: EditorSession) -> str:
        i = s.check_index(index)
        if not file:
            raise LayeredError("upload a PNG to replace the layer with")
        pixels = load_layer_image(Path(file))
        s.edit(i, lambda st, j: edits.replace_pixels(st, j, pixels, at="center"))
        return f"Replaced the pixels of layer {i} with {Path(file).name}."

    return respond(session, act)


def undo(session):
    return respond(session, lambda s: "Undone." if s.undo() else "Nothing to undo.")


def redo(session):
    return respond(session, lambda s: "Redone." if s.redo() else "Nothing to redo.")


def compare(session, which):
    """Before/after toggle: show the original image or the edited composite."""
    session = _session(session)
    return view(session, "Showing the original." if which == BEFORE else "", before=which == BEFORE)


# ---- the canvas's gestures -----------------------------------------------------------------------------


# The canvas's `layer_edit` ops: op -> (handler, the keys of the event's data passed as its arguments).
CANVAS_OPS = {
    "select": (select_layer, ("index",)),
    "deselect": (deselect, ()),
    "move": (move_by, ("index", "dx", "dy")),
    "scale": (scale_about, ("index", "sx", "sy", "ax", "ay")),
    "rotate": (rotate, ("index", "degrees")),
    "reorder": (reorder, ("index", "position")),
    "visible": (set_visible, ("index", "visible")),
    "opacity": (set_opacity, ("index", "opacity")),
    "rename": (rename, ("index", "name")),
    "delete": (delete, ("index",)),
    "duplicate": (duplicate, ("index",)),
    "undo": (undo, ()),
    "redo": (redo, ()),
    "compare": (lambda session, before: compare(session, BEFORE if before else AFTER), ("before",)),
}


def canvas_edit(session, evt: gr.EventData):
    """One finished gesture on the canvas or in its layer panel: `{"op": ..., ...}` (`canvas.js`)."""
    data = getattr(evt, "_data", None)
    data = data if isinstance(data, dict) else {}
    op = CANVAS_OPS.get(data.get("op"))
    if op is None:
        return respond(session, lambda _s: _refuse(f"unknown canvas edit {data.get('op')!r}"))
    handler, keys = op
    return handler(session, *(data.get(key) for key in keys))


def _refuse(message: str) -> str:
    raise LayeredError(message)


def export(session, kind):
    """Write the stack as PSD/ORA/ZIP/PPTX or the composite PNG; returns (file, status)."""
    session = _session(session)
    try:
        path = session.export(kind)
    except Exception as exc:
        message = _message(exc)
        gr.Warning(message)
        return None, f"**Error:** {message}"
    return str(path), f"Exported **{path.name}**."


def _number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LayeredError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise LayeredError(f"{name} must be a finite number, got {value!r}")
    return number


def _whole(value, name: str) -> int:
    return round(_number(value, name))


# ---- layout --------------------------------------------------------------------------------------------


def export_kinds() -> list[str]:
    """Export formats offered: the session's choices, pptx only when python-pptx is installed."""
    has_pptx = importlib.util.find_spec("pptx") is not None
    return [kind for kind in EXPORT_CHOICES if kind != "pptx" or has_pptx]


def build_app(model: str = "demo", concurrency: int = 1, examples: list[str] | None = None) -> gr.Blocks:
    """The editor's Blocks; `concurrency` = decompositions run at once (all sessions together)."""
    with gr.Blocks(title="layered: layer editor", analytics_enabled=False) as demo:
        state = gr.State(None, delete_callback=lambda s: s.close() if isinstance(s, EditorSession) else None)
        gr.Markdown(
            "## layered: layer editor\nOpen an image (or a PSD/ORA), decompose it into layers, edit one layer "
            "at a time, export a PSD for Photoshop, GIMP or Krita."
        )
        with gr.Row():
            with gr.Column(scale=3, min_width=280):
                upload = gr.File(label="Open image, PSD or ORA", file_types=list(UPLOAD_SUFFIXES), elem_id="upload")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[upload], label="Examples")
                with gr.Accordion("Decompose", open=True):
                    method = gr.Radio(list(dec.METHODS), value=dec.DEFAULT_METHOD, label="Method", elem_id="method")
                    model_box = gr.Textbox(value=model, label="Model (name, folder or Hub id)", elem_id="model")
                    layers = gr.Dropdown(
                        LAYER_CHOICES, value="auto", label="Layers", allow_custom_value=True, elem_id="layers-count"
                    )
                    steps = gr.Slider(MIN_STEPS, 100, value=50, step=1, label="Steps (model)")
                    seed = gr.Number(0, precision=0, label="Seed (model)")
                    guidance = gr.Slider(1.0, 10.0, value=4.0, step=0.5, label="Guidance (model)")
                    resolution = gr.Number(0, precision=0, label="Resolution (model; 0 = its default)")
                    prompt = gr.Textbox(label="Prompt (model; empty = automatic)", lines=2)
                    with gr.Row():
                        decompose_btn = gr.Button("Decompose", variant="primary", elem_id="decompose")
                        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
                with gr.Accordion("Export", open=True):
                    with gr.Row():
                        kind = gr.Radio(export_kinds(), value="psd", label="Format", elem_id="export-kind")
                        export_btn = gr.Button("Export", variant="primary", elem_id="export")
                    export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                with gr.Accordion("Selected layer", open=True):
                    layer = gr.Dropdown([], label="Selected layer", elem_id="layer")
                    with gr.Row():
                        visible = gr.Checkbox(True, label="Visible", elem_id="visible")
                        opacity = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Opacity", elem_id="opacity")
                    with gr.Row():
                        name = gr.Textbox(label="Name", elem_id="name", scale=3)
                        rename_btn = gr.Button("Rename", size="sm", elem_id="rename", scale=1)
                    with gr.Row():
                        x = gr.Number(0, precision=0, label="X", elem_id="x")
                        y = gr.Number(0, precision=0, label="Y", elem_id="y")
                        move_btn = gr.Button("Move", size="sm", elem_id="move")
                    with gr.Row():
                        factor = gr.Number(1.0, label="Scale", elem_id="scale-factor")
                        scale_btn = gr.Button("Scale", size="sm", elem_id="scale")
                        degrees = gr.Number(0.0, label="Rotate (degrees)", elem_id="degrees")
                        rotate_btn = gr.Button("Rotate", size="sm", elem_id="rotate")
                    with gr.Accordion("Recolour", open=True):
                        hue = gr.Slider(-180, 180, value=0, step=1, label="Hue (degrees)", elem_id="hue")
                        saturation = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="Saturation", elem_id="saturation")
                        brightness = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="Brightness", elem_id="brightness")
                        recolor_btn = gr.Button("Recolour", elem_id="recolor")
                    with gr.Row():
                        raise_btn = gr.Button("Up", size="sm", elem_id="raise")
                        lower_btn = gr.Button("Down", size="sm", elem_id="lower")
                        duplicate_btn = gr.Button("Duplicate", size="sm", elem_id="duplicate")
                        delete_btn = gr.Button("Delete", variant="stop", size="sm", elem_id="delete")
                        merge_btn = gr.Button("Merge down", size="sm", elem_id="merge-down")
                    with gr.Row():
                        replacement = gr.File(
                            label="Replace with image", file_types=list(IMAGE_SUFFIXES), elem_id="replacement"
                        )
                        replace_btn = gr.Button("Replace", size="sm", elem_id="replace")
            with gr.Column(scale=9, min_width=480):
                canvas = canvas_view.make_canvas()
                with gr.Row():
                    split_btn = gr.Button("Split this layer again", size="sm", elem_id="split")
                    undo_btn = gr.Button("Undo", size="sm", elem_id="undo")
                    redo_btn = gr.Button("Redo", size="sm", elem_id="redo")
                    compare_radio = gr.Radio([AFTER, BEFORE], value=AFTER, label="Show", elem_id="compare")
                status = gr.Markdown("Open an image to start.", elem_id="status")
                with gr.Accordion("Flattened preview", open=False):
                    preview = gr.Image(
                        label="Preview", type="numpy", format="jpeg", interactive=False, elem_id="preview", height=480
                    )
                with gr.Accordion("Layer data", open=False):
                    info = gr.JSON(label="Layers (bottom-first)", elem_id="info")

        view_outputs = View(
            session=state,
            canvas=canvas,
            preview=preview,
            layer=layer,
            visible=visible,
            opacity=opacity,
            name=name,
            x=x,
            y=y,
            info=info,
            status=status,
            compare=compare_radio,
        )
        outputs = list(view_outputs)  # a handler's View goes to these by field
        settings = [method, model_box, layers, steps, seed, guidance, resolution, prompt]

        def on(trigger, fn, inputs, api_name, **kwargs):
            return trigger(fn, inputs=[state, *inputs], outputs=outputs, api_name=api_name, **kwargs)

        demo.load(refresh, inputs=[state], outputs=outputs, api_name="refresh")
        on(upload.change, open_file, [upload], "open")  # .change: uploads and examples
        heavy = dict(concurrency_limit=concurrency, concurrency_id="decompose")
        decompose_event = on(decompose_btn.click, decompose, settings, "decompose", **heavy)
        split_event = on(split_btn.click, decompose_layer, [layer, *settings], "decompose_layer", **heavy)
        cancel_btn.click(
            cancel,
            inputs=[state],
            outputs=[status],
            cancels=[decompose_event, split_event],
            queue=False,
            api_name="cancel",
        )
        on(layer.input, select_layer, [layer], "select")
        # A gesture is a small edit that must feel immediate: it skips the queue and its event stream (a
        # plain HTTP request, ~50 ms less per release); an error shows in the status line (no toast off-queue).
        getattr(canvas, canvas_view.EDIT_EVENT)(
            canvas_edit,
            inputs=[state],
            outputs=outputs,
            api_visibility="private",
            trigger_mode="multiple",
            queue=False,
        )
        on(visible.input, set_visible, [layer, visible], "set_visible")
        on(opacity.release, set_opacity, [layer, opacity], "set_opacity")
        on(move_btn.click, move, [layer, x, y], "move")
        on(scale_btn.click, scale, [layer, factor], "scale")
        on(rotate_btn.click, rotate, [layer, degrees], "rotate")
        on(recolor_btn.click, recolor, [layer, hue, saturation, brightness], "recolor")
        on(rename_btn.click, rename, [layer, name], "rename")
        on(raise_btn.click, raise_layer, [layer], "raise_layer")
        on(lower_btn.click, lower_layer, [layer], "lower_layer")
        on(duplicate_btn.click, duplicate, [layer], "duplicate")
        on(delete_btn.click, delete, [layer], "delete")
        on(merge_btn.click, merge_down, [layer], "merge_down")
        on(replace_btn.click, replace, [layer, replacement], "replace")
        on(undo_btn.click, undo, [], "undo")
        on(redo_btn.click, redo, [], "redo")
        on(compare_radio.input, compare, [compare_radio], "compare")
        export_btn.click(export, inputs=[state, kind], outputs=[export_file, status], api_name="export")
    demo.queue(default_concurrency_limit=8, max_size=64)
    return demo


def _warm_matplotlib() -> None:
    """Gradio asks matplotlib for its backend around every event; the first ask imports pyplot (0.5-1.5 s on
    2 cores). Pay it at start-up rather than in the user's first open."""
    try:
        import matplotlib  # optional, as for Gradio
    except ImportError:
        return
    matplotlib.get_backend()


def launch(
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    model: str = "demo",
    share: bool = False,
    concurrency: int = 1,
    examples: list[str] | None = None,
    block: bool = True,
) -> gr.Blocks:
    """Build and serve the editor (bound to `host`, no share link unless asked)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    _warm_matplotlib()
    demo = build_app(model=model, concurrency=concurrency, examples=examples)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        max_file_size="256mb",
        ssr_mode=False,
        css=CSS,
        quiet=not block,
    )
    return demo
