"""Tiny VLD-MMDiT training on CPU: samples/s with the latent/text cache vs without, and peak memory with vs
without gradient checkpointing. Each variant runs in its own process (peak RSS is per process), in one run.

    python benchmarks/bench_train.py [--steps 10] [--rows 8] [--resolution 128] [--layers 8] [--blocks 4] [--heads 4]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_dataset(folder: Path, rows: int, size: int, layers: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from layered.stack import Layer, composite

    def png(a):
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    rng = np.random.default_rng(0)
    table = []
    for i in range(rows):
        stack = [np.full((size, size, 4), (*rng.integers(0, 256, 3), 255), np.uint8)]
        for _ in range(layers - 1):
            layer = np.zeros((size, size, 4), np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            layer[y : y + size // 2, x : x + size // 2] = (*rng.integers(0, 256, 3), 255)
            stack.append(layer)
        comp = composite([Layer.from_canvas(p, "l") for p in stack], size, size)
        table.append({"id": f"r{i}", "composite": png(comp), "layers": [png(p) for p in stack], "meta": "{}"})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table), folder / "train-00000.parquet")


def variant(args) -> dict:
    from training.config import load_config
    from training.mmdit import train_mmdit

    overrides = {
        "data.path": args.data,
        "output_dir": args.out,
        "train.max_steps": args.steps,
        "train.report_to": None,
        "train.checkpoint_every": 10**6,
        "data.resolution": args.resolution,
        "data.max_layers": args.layers,
        "data.cache": args.cache,
        "train.gradient_checkpointing": args.checkpointing,
        "model.transformer.num_layers": args.blocks,
        "model.transformer.num_attention_heads": args.heads,
    }
    config = load_config(ROOT / "training" / "configs" / "tiny_i2l.yaml", overrides)
    started = time.perf_counter()
    result = train_mmdit(config)
    seconds = time.perf_counter() - started
    return {
        "samples_per_s": args.steps * config.data.batch_size / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "last_loss": result["losses"][-1],
    }


def run_variant(common: list[str], extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--variant", *common, *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=4, help="transformer blocks (tiny config: 2)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads of 16 dims (tiny config: 2)")
    parser.add_argument("--variant", action="store_true")
    parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--cache")
    parser.add_argument("--checkpointing", action="store_true")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(variant(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "ds", args.rows, args.resolution, args.layers)
        common = ["--steps", str(args.steps), "--resolution", str(args.resolution), "--layers", str(args.layers)]
        common += ["--blocks", str(args.blocks), "--heads", str(args.heads)]
        common += ["--data", str(tmp / "ds")]
        from training.cache import write_cache
        from training.config import load_config

        config = load_config(
            ROOT / "training" / "configs" / "tiny_i2l.yaml",
            {"data.path": str(tmp / "ds"), "data.resolution": args.resolution, "data.max_layers": args.layers},
        )
        write_cache(config, tmp / "cache")
        online = run_variant(common, ["--out", str(tmp / "a")])
        cached = run_variant(common, ["--out", str(tmp / "b"), "--cache", str(tmp / "cache")])
        plain = run_variant(common, ["--out", str(tmp / "c"), "--cache", str(tmp / "cache")])
        ckpt = run_variant(common, ["--out", str(tmp / "d"), "--cache", str(tmp / "cache"), "--checkpointing"])
    print(
        f"tiny i2l ({args.blocks} blocks, {args.heads} heads x 16), {args.resolution}px, {args.layers} layers,"
        f" batch 4, {args.steps} steps, CPU; cache built beforehand"
    )
    print(
        f"samples/s  cache {cached['samples_per_s']:.2f}  vs online VAE+text encoder {online['samples_per_s']:.2f}"
        f"  ratio {cached['samples_per_s'] / online['samples_per_s']:.2f}x"
    )
    print(
        f"peak RSS   gradient checkpointing {ckpt['peak_rss_mib']:.0f} MiB  vs without {plain['peak_rss_mib']:.0f} MiB"
        f"  ratio {ckpt['peak_rss_mib'] / plain['peak_rss_mib']:.2f}x"
    )


if __name__ == "__main__":
    main()
