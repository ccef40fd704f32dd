"""Editor latency: from an edit to the updated preview, 8 layers on a 1024 x 1024 canvas, excluding the browser.

"ours" = the editor's real handler (edit + undo history + composite + checkerboard preview + cached layer
thumbnails + layer data) plus Gradio's own postprocessing of its outputs (preview written as JPEG, thumbnails
as PNG into Gradio's cache), i.e. everything the server does before the response leaves. "baseline" = the
naive way: the same edit, a PIL alpha_composite chain of full-canvas layers, every thumbnail re-rendered and
the preview sent as PNG. Prints median ms per edit kind, ratio ours / baseline, and peak traced memory.
Run: python benchmarks/bench_editor.py [--repeat 7]  (target: <= 200 ms per edit on this CPU)
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import tracemalloc

import numpy as np
from PIL import Image

CANVAS = 1024
LAYERS = 8


def make_stack(rng: np.random.Generator):
    """An opaque background + 7 soft-edged shapes of 300-1000 px, some semi-transparent."""
    from layered.stack import Layer, LayerStack

    layers = [Layer(np.dstack([np.full((CANVAS, CANVAS, 3), 230, np.uint8), np.full((CANVAS, CANVAS), 255, np.uint8)]))]
    for i in range(1, LAYERS):
        w, h = (int(v) for v in rng.integers(300, CANVAS, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        pixels = np.empty((h, w, 4), np.uint8)
        pixels[..., :3] = rng.integers(0, 256, 3, dtype=np.uint8)
        pixels[..., 3] = (np.clip((1.0 - r) * 8.0, 0.0, 1.0) * 255).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(-w // 4, CANVAS - w // 2, 2))
        layers.append(Layer(pixels, x, y, f"shape {i}", opacity=float(rng.choice([1.0, 0.8]))))
    return LayerStack(CANVAS, CANVAS, tuple(layers))


def edits_to_time(k: int):
    """(name, ui handler call) pairs; k varies the values so no edit is a no-op."""
    from layered.app import ui

    return [
        ("move", lambda s: ui.move(s, 3, 100 + k, 120 + k)),
        ("opacity", lambda s: ui.set_opacity(s, 5, 0.5 + 0.01 * (k % 40))),
        ("hide/show", lambda s: ui.set_visible(s, 2, k % 2 == 0)),
        ("recolour", lambda s: ui.recolor(s, 4, 10 + k, 1.0, 1.0)),
        ("undo", lambda s: ui.undo(s)),
    ]


def ours_once(session, call, image_out, gallery_out) -> float:
    start = time.perf_counter()
    out = call(session)
    image_out.postprocess(out[1])  # what Gradio does with the outputs before responding
    gallery_out.postprocess(out[2])
    return time.perf_counter() - start


def baseline_once(stack, edit) -> float:
    from layered.app import render

    start = time.perf_counter()
    stack = edit(stack)
    canvas = Image.new("RGBA", (CANVAS, CANVAS))
    for layer in stack.layers:
        if not layer.visible:
            continue
        pixels = np.array(layer.pixels)
        pixels[..., 3] = (pixels[..., 3] * layer.opacity + 0.5).astype(np.uint8)
        full = Image.new("RGBA", (CANVAS, CANVAS))
        full.paste(Image.fromarray(pixels), (layer.x, layer.y))
        canvas = Image.alpha_composite(canvas, full)
    board = Image.fromarray(render.checkerboard(CANVAS, CANVAS)).convert("RGBA")
    Image.alpha_composite(board, canvas).convert("RGB").save(io.BytesIO(), "PNG")
    for layer in stack.layers:
        Image.fromarray(render.thumbnail(layer, CANVAS, CANVAS)).save(io.BytesIO(), "PNG")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="bench-editor-"))
    import gradio as gr

    from layered import edits
    from layered.app.session import EditorSession

    stack = make_stack(np.random.default_rng(0))
    session = EditorSession()
    session.start(stack, stack.composite(), "bench")
    image_out, gallery_out = gr.Image(format="jpeg"), gr.Gallery(format="png")
    ours_once(session, edits_to_time(0)[0][1], image_out, gallery_out)  # warm up: thumbnails, imports
    baseline_edits = {
        "move": lambda st, k: edits.move_to(st, 3, 100 + k, 120 + k),
        "opacity": lambda st, k: edits.set_opacity(st, 5, 0.5 + 0.01 * (k % 40)),
        "hide/show": lambda st, k: edits.set_visible(st, 2, k % 2 == 0),
        "recolour": lambda st, k: edits.recolor(st, 4, hue=10 + k),
        "undo": lambda st, _k: st,
    }
    print(f"{LAYERS} layers, {CANVAS} x {CANVAS} canvas, median of {args.repeat} (ms per edit, edit -> preview ready)")
    print(f"{'edit':10s} {'ours':>8s} {'baseline':>9s} {'ratio':>6s}")
    worst = 0.0
    for index, (name, _) in enumerate(edits_to_time(0)):
        ours = [ours_once(session, edits_to_time(k)[index][1], image_out, gallery_out) for k in range(args.repeat)]
        edit = baseline_edits[name]
        base = [baseline_once(stack, lambda st, k=k, edit=edit: edit(st, k)) for k in range(args.repeat)]
        o, b = statistics.median(ours) * 1000, statistics.median(base) * 1000
        worst = max(worst, o)
        print(f"{name:10s} {o:8.1f} {b:9.1f} {o / b:6.2f}")
    tracemalloc.start()
    ours_once(session, edits_to_time(99)[0][1], image_out, gallery_out)
    peak_ours = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    tracemalloc.start()
    baseline_once(stack, lambda st: baseline_edits["move"](st, 99))
    peak_base = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"peak traced memory per edit: ours {peak_ours:.0f} MiB, baseline {peak_base:.0f} MiB")
    print(f"slowest edit kind (median): {worst:.0f} ms (target <= 200 ms)")


if __name__ == "__main__":
    main()
