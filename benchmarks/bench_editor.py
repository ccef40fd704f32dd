"""The editor in a real Chromium (Debian's, driven by Playwright): open, drag, release, at two document sizes.

For each document (8 layers at 1024 x 1024 and 20 layers at 4096 x 4096, written as a PSD and uploaded):
- open: from choosing the file (on a page whose first view is drawn) to every layer drawn on the canvas (target
  <= 1 s at 1024 x 1024, 8 layers);
- drag: the interval between the page's animation frames while a layer follows the pointer (target: 60 fps
  or better, i.e. a median frame of at most 16.7 ms) and the page's own work per frame;
- release: from the pointer's release to the server-confirmed canvas drawn (targets: <= 150 ms for
  8 x 1024, <= 400 ms for 20 x 4096), measured in the page (`window.layeredEditor.confirmations`).
The baseline, measured in the same run on the same stack: what the form editor did per edit before the
canvas, flattening the full-resolution stack and scaling it into the preview (`render.preview(composite)`).
Prints each number, ours / target and ours / baseline, and the peak memory of this process (server + client
driver; the browser is a separate process).
Run: python benchmarks/bench_editor.py [--drags 5]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = {(8, 1024): {"open": 1000, "release": 150}, (20, 4096): {"release": 400}}
FRAME_TARGET_MS = 1000 / 60


def make_stack(count: int, side: int, seed: int = 0):
    """A gradient background + `count - 1` soft-edged gradient shapes of a third of the canvas or so."""
    from layered.stack import Layer, LayerStack

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    background = np.empty((side, side, 4), np.uint8)
    background[..., 0] = (200 + 40 * ramp[None, :]).astype(np.uint8)
    background[..., 1] = (180 + 60 * ramp[:, None]).astype(np.uint8)
    background[..., 2], background[..., 3] = 220, 255
    layers = [Layer(background, 0, 0, "background", kind="background")]
    for i in range(1, count):
        w, h = (int(v) for v in rng.integers(side // 5, side // 2, 2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        pixels = np.empty((h, w, 4), np.uint8)
        colour = rng.integers(0, 256, 3)
        for c in range(3):
            pixels[..., c] = np.clip(colour[c] * (0.6 + 0.4 * xx / w), 0, 255).astype(np.uint8)
        pixels[..., 3] = (np.clip((1.0 - r) * 8.0, 0.0, 1.0) * 255).astype(np.uint8)
        x, y = int(rng.integers(0, side - w)), int(rng.integers(0, side - h))
        layers.append(Layer(pixels, x, y, f"shape {i}"))
    return LayerStack(side, side, tuple(layers))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline_ms(stack, repeat: int = 3) -> float:
    """The form editor's per-edit preview: flatten at full resolution, scale into the preview."""
    from layered.app import render

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        render.preview(stack.composite())
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(page, stack, path: Path, drags: int) -> dict:
    page.goto(page.url)
    page.wait_for_selector("#upload")
    # the page is ready when its first view (the load event's) is drawn: a user picks a file after that
    page.wait_for_function("() => window.layeredEditor && window.layeredEditor.version > 0", timeout=60_000)
    count = len(stack.layers)
    start = time.perf_counter()
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        """n => { const imgs = [...document.querySelectorAll('#layer-canvas img.le-layer')];
                  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=count,
        timeout=120_000,
    )
    open_ms = (time.perf_counter() - start) * 1000
    top = stack.layers[-1]
    box = page.locator("#layer-canvas .le-board").bounding_box()
    zoom = float(page.get_attribute("#layer-canvas", "data-zoom"))
    x0 = box["x"] + (top.x + top.width / 2) * zoom
    y0 = box["y"] + (top.y + top.height / 2) * zoom
    page.evaluate("() => { window.layeredEditor.frames = []; window.layeredEditor.confirmations = []; }")
    for k in range(drags):
        step = 40 if k % 2 == 0 else -40
        page.mouse.move(x0, y0)
        page.mouse.down()
        for j in range(1, 31):  # a half-second drag: one pointer move per frame
            page.mouse.move(x0 + step * j / 30, y0 + step * j / 60)
            page.wait_for_timeout(16)
        page.mouse.up()
        page.wait_for_function(f"() => window.layeredEditor.confirmations.length >= {k + 1}", timeout=60_000)
        x0, y0 = x0 + step, y0 + step / 2
    probe = page.evaluate("() => window.layeredEditor")
    frames = probe["frames"]
    return {
        "open": open_ms,
        "frame": statistics.median(f["interval"] for f in frames),
        "frame_p95": float(np.percentile([f["interval"] for f in frames], 95)),
        "work": statistics.median(f["work"] for f in frames),
        "release": statistics.median(c["ms"] for c in probe["confirmations"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drags", type=int, default=5)
    parser.add_argument("--sizes", default="8x1024,20x4096", help="LAYERSxSIDE,... (default: the two targets)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from layered.app.ui import launch
    from layered.formats import write_stack

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("bench_editor: chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    port = free_port()
    demo = launch(host="127.0.0.1", port=port, block=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            for spec in args.sizes.split(","):
                count, side = (int(v) for v in spec.split("x"))
                stack = make_stack(count, side)
                path = write_stack(stack, Path(tmp) / f"doc-{count}x{side}.psd", "psd")
                result = measure(page, stack, path, args.drags)
                result["baseline"] = baseline_ms(stack)
                rows.append(((count, side), result))
            browser.close()
    finally:
        demo.close()
    print(
        "| document | open ms | drag frame ms (median / p95) | page work per frame ms | release ms | "
        "form editor's preview ms (baseline) | release / baseline | vs target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (count, side), r in rows:
        target = TARGETS.get((count, side), {})
        versus = [f"frame {r['frame'] / FRAME_TARGET_MS:.2f}x of 16.7"]
        versus += [f"{k} {r[k] / v:.2f}x of {v}" for k, v in target.items()]
        print(
            f"| {count} layers, {side}² | {r['open']:.0f} | {r['frame']:.1f} / {r['frame_p95']:.1f} | "
            f"{r['work']:.2f} | {r['release']:.0f} | {r['baseline']:.0f} | {r['release'] / r['baseline']:.2f} | "
            f"{'; '.join(versus)} |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (this process: server + driver): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
