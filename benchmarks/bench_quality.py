"""Decomposition quality, one table, one run: the number the model work is judged by (LayerD protocol).

Inputs: held-out rich synthetic designs (seed 1000, never used for training) at 128 and 256 px, and the
accepted samples of the PSD corpus (../shared/psd-corpus through the dataset builder's own rules, at most
256 px; canvases under 16 px are left out), and with --dataset DIR the first --rows rows of a dataset that
`layered psd build` wrote (a held-out one: another seed or source than training). Every method is told the
true layer count N.
Methods:
  oracle       the ground truth re-ordered by occlusion only (overlapping layers keep their visible order,
               the rest go by the layer-order convention: `psd_pipeline.synth_rich.canonical_order`): the
               ceiling for a decomposer that finds every layer but has to guess the stacking;
  one layer    the whole image as one opaque layer (the trivial baseline);
  classic      `layered.classic.decompose_classic(image, N)`; classic:auto the same with layers="auto";
  peel         `layered decompose --method peel --layers N` (the peel network of --peel, refined, as the CLI
               gives it); peel:auto the same with layers="auto";
  model:<dir>  the pipeline's raw layers (at its working size, upsampled), and model:<dir>+refine, the same
               through `layered.refine.refine` (when that module is installed); on --model-samples
               inputs spread evenly over each set (the n column says how many).
Columns: RGB L1 and soft IoU at merge 0 .. --max-merge (2; `layered.metrics.evaluate`), recomposition PSNR of
the layers against the input (dB, mean over images, 99 = exact), seconds per image; then the peak resident
memory. --json adds per row the PSNR of the pooled error (`psnr_pooled`: refined layers are often exact, and a
mean of capped per-image PSNRs hides the rest) and the worst image's (`psnr_min`).

    python benchmarks/bench_quality.py [--count 32] [--sizes 128 256] [--peel shipped|DIR|none]
        [--model demo|DIR|none] [--steps 20] [--dataset DIR [--rows 150]] [--max-merge 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "psd-corpus"
HELD_OUT_SEED = 1000
MAX_MERGE = 2  # the default of --max-merge
MIN_CORPUS_SIDE = 16


def held_out_designs(count: int, size: int) -> list[tuple[np.ndarray, object, list[str]]]:
    """(input RGBA, ground-truth LayerStack, layer kinds) for rich designs 1..count of the held-out seed."""
    from psd_pipeline.synth_rich import draw_rich

    out = []
    for k in range(1, count + 1):
        design = draw_rich(HELD_OUT_SEED, k, size)
        out.append((design.stack.composite(), design.stack, list(design.kinds)))
    return out


def corpus_samples(folder: Path, max_side: int = 256) -> list[tuple[np.ndarray, object, list[str]]]:
    """The accepted corpus files as the builder makes them (curated, downscaled), with text layers marked."""
    from layered.stack import LayerStack
    from psd_pipeline.build import find_inputs
    from psd_pipeline.sample import SampleOptions, process_file

    out = []
    for relative in find_inputs(folder):
        row = process_file(folder / relative, relative, SampleOptions(max_side=max_side))["row"]
        if row is None:
            continue
        meta = json.loads(row["meta"])
        if min(meta["width"], meta["height"]) < MIN_CORPUS_SIDE:
            continue
        layers = [np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")) for png in row["layers"]]
        truth = LayerStack.from_images(layers, meta["layer_names"])
        kinds = ["text" if kind == "type" else "shape" for kind in meta["layer_kinds"]]
        out.append((np.asarray(Image.open(io.BytesIO(row["composite"])).convert("RGBA")), truth, kinds))
    return out


def dataset_samples(folder: Path, rows: int) -> list[tuple[np.ndarray, object, list[str]]]:
    """The first `rows` rows of a `layered psd build` dataset (composite, layers, text layers marked)."""
    from layered.stack import LayerStack
    from training.data import RowReader, index_rows

    reader = RowReader()
    out = []
    for ref in index_rows(folder)[:rows]:
        row = reader.read(ref)
        names = row["meta"].get("layer_names")
        truth = LayerStack.from_images(row["layers"], names if len(names or ()) == len(row["layers"]) else None)
        kinds = row["meta"].get("layer_kinds") or ["shape"] * len(truth)
        out.append((row["composite"], truth, ["text" if kind in ("type", "text") else "shape" for kind in kinds]))
    return out


def oracle(_image, truth, kinds):
    from psd_pipeline.synth_rich import canonical_order

    return truth.replace(layers=tuple(truth[i] for i in canonical_order(truth, kinds)))


def one_layer(image, _truth, _kinds):
    from layered.stack import Layer, LayerStack

    opaque = image.copy()
    opaque[..., 3] = 255
    return LayerStack(image.shape[1], image.shape[0], (Layer(opaque, 0, 0, "image"),))


def classic(image, truth, _kinds, layers=None):
    from layered.classic import decompose_classic

    return decompose_classic(image, layers=len(truth) if layers is None else layers)


def peel_methods(folder: str) -> dict[str, Callable]:
    """peel and peel:auto, through the one decomposer factory the CLI and the editor use."""
    from layered.decompose import Settings, decomposer

    model = None if folder == "shipped" else folder

    def run(image, layers):
        settings = Settings(method="peel", model=model or "demo", layers=layers)
        return decomposer(settings)(image)

    return {
        "peel": lambda image, truth, _kinds: run(image, len(truth)),
        "peel:auto": lambda image, _truth, _kinds: run(image, "auto"),
    }


def model_methods(model: str, steps: int) -> dict[str, Callable]:
    """model:<name> (raw layers, upsampled to the input's size) and, with layered.refine, model:<name>+refine.

    Both rows share one model call per image; each row's time includes it.
    """
    import dataclasses

    from layered.decompose import Settings, call_pipeline, load_model
    from layered.pixels import resize_rgba
    from layered.stack import Layer, LayerStack

    settings = Settings(method="model", model=model, steps=steps, refine=False, device="cpu", dtype="float32")
    pipe = load_model(settings)
    cache: dict[int, tuple[LayerStack, float]] = {}

    def predict(image, truth) -> tuple[LayerStack, float]:
        """The model's layers at its working size, and the seconds the call took (0 after the first time)."""
        key = id(image)
        if key in cache:
            return cache[key]
        started = time.perf_counter()
        out = call_pipeline(pipe, image, dataclasses.replace(settings, layers=len(truth)))
        arrays = list((np.asarray(out.images[0]) * 255).round().astype(np.uint8))  # as numpy_to_pil rounds
        height, width = arrays[0].shape[:2]
        stack = LayerStack(width, height, tuple(Layer(a, 0, 0, f"layer {i}") for i, a in enumerate(arrays)))
        cache[key] = (stack, time.perf_counter() - started)
        return stack, 0.0

    def raw(image, truth, _kinds):
        working, seconds = predict(image, truth)
        size = (image.shape[1], image.shape[0])
        layers = tuple(layer.replace(pixels=resize_rgba(layer.pixels, size)) for layer in working)
        return LayerStack(*size, layers), seconds

    name = f"model:{model}"
    methods = {name: raw}
    if importlib.util.find_spec("layered.refine") is None:
        print(f"# {name}+refine: row missing (layered.refine is not installed yet)", file=sys.stderr)
        return methods
    from layered.refine import refine

    def refined(image, truth, _kinds):
        working, seconds = predict(image, truth)
        return refine(working, image), seconds

    methods[f"{name}+refine"] = refined
    return methods


def score(method: Callable, samples, max_merge: int = MAX_MERGE) -> dict:
    """Mean LayerD rows, recomposition PSNR (mean, pooled, worst) and seconds per image of one method on one set.

    A method returns a LayerStack, or (LayerStack, seconds spent earlier on this image and not timed now).
    """
    from layered.metrics import evaluate, mean_scores
    from layered.psd.fidelity import PERFECT_PSNR, comparable
    from psd_pipeline.fidelity import psnr

    rows, psnrs, errors, seconds = [], [], [], 0.0
    for image, truth, kinds in samples:
        started = time.perf_counter()
        stack = method(image, truth, kinds)
        seconds += time.perf_counter() - started
        if isinstance(stack, tuple):
            stack, earlier = stack
            seconds += earlier
        rows.append(evaluate(stack, truth, max_merge))
        recomposed = stack.composite()
        psnrs.append(psnr(recomposed, image))
        ours, reference = comparable(recomposed, image)  # the pixels psnr compares
        errors.append(float(np.mean(np.square(ours - reference, dtype=np.float64))))
    pooled = float(np.mean(errors))
    return {
        "scores": mean_scores(rows),
        "psnr": float(np.mean(psnrs)),
        "psnr_pooled": PERFECT_PSNR if pooled == 0 else min(PERFECT_PSNR, 10 * math.log10(1.0 / pooled)),
        "psnr_min": float(min(psnrs)),
        "s_per_image": seconds / len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32, help="held-out designs per size (default 32)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="PSD folder (default ../shared/psd-corpus)")
    parser.add_argument("--model", default="demo", help="demo (default), a pipeline folder, or none")
    parser.add_argument("--peel", default="shipped", help="shipped (default), a PeelNet folder, or none")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps of the model (default 20)")
    parser.add_argument(
        "--model-samples",
        type=int,
        default=4,
        help="inputs per set the model decomposes, evenly spread (default 4; 0 = all)",
    )
    parser.add_argument("--dataset", type=Path, help="also score the first --rows rows of this built dataset")
    parser.add_argument("--rows", type=int, default=150, help="rows of --dataset (default 150)")
    parser.add_argument("--max-merge", type=int, default=MAX_MERGE, help=f"merges scored (default {MAX_MERGE})")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    from layered.errors import LayeredError
    from psd_pipeline.assets import require_assets

    try:
        if args.rows < 1 or args.max_merge < 0:
            raise LayeredError("--rows must be at least 1 and --max-merge at least 0")
        require_assets()
        inputs = {f"rich {size} px": held_out_designs(args.count, size) for size in args.sizes}
        if args.corpus.is_dir():
            inputs["PSD corpus"] = corpus_samples(args.corpus)
        else:
            print(f"# PSD corpus: {args.corpus} not found, rows left out", file=sys.stderr)
        if args.dataset is not None:
            inputs[f"dataset {args.dataset.name}"] = dataset_samples(args.dataset, args.rows)
    except LayeredError as exc:
        print(f"bench_quality: error: {exc}", file=sys.stderr)
        sys.exit(2)
    methods: dict[str, Callable] = {
        "oracle (canonical order)": oracle,
        "one layer": one_layer,
        "classic": classic,
        "classic:auto": lambda image, truth, kinds: classic(image, truth, kinds, "auto"),
    }
    if args.peel != "none":
        methods.update(peel_methods(args.peel))
    if args.model != "none":
        methods.update(model_methods(args.model, args.steps))

    table = []
    merges = range(args.max_merge + 1)
    header = f"| inputs | method | n | {' | '.join(f'L1@{k} | IoU@{k}' for k in merges)} | PSNR dB | s/img |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for input_name, every in inputs.items():
        for method_name, method in methods.items():
            is_model = method_name.startswith("model:")
            samples = every
            if is_model and 0 < args.model_samples < len(every):  # evenly spread over the set
                samples = every[:: len(every) // args.model_samples][: args.model_samples]
            result = score(method, samples, args.max_merge)
            s = result["scores"]
            cells = [f"{s[k][m]:.3f}" for k in merges for m in ("rgb_l1", "soft_iou")]
            print(
                f"| {input_name} | {method_name} | {len(samples)} | {' | '.join(cells)} | "
                f"{result['psnr']:.1f} | {result['s_per_image']:.3f} |",
                flush=True,
            )
            table.append({"inputs": input_name, "method": method_name, "n": len(samples), **result})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory {peak_mb:.0f} MB; total {time.perf_counter() - started:.0f} s")
    if args.json:
        from layered.fileio import atomic_path

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
