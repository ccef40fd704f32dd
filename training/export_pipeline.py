"""Write a trained pipeline folder again in a smaller dtype (how layered/assets/demo was made from OUTPUT/pipeline).

    python -m training.export_pipeline runs/demo_i2l/pipeline layered/assets/demo [--dtype float16]
    python -m training.export_pipeline runs/i2l/checkpoints/checkpoint-600 runs/i2l/pipeline-600 --dtype float32

Weights go to safetensors only; the folder loads with `LayeredPipeline.from_pretrained` (any dtype on load) and,
through its custom-pipeline module, with `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`.
An existing model card (`README.md`) in the target is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layered.errors import LayeredError
from layered.fileio import atomic_dir


def export_pipeline(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Load `source` as a LayeredPipeline, cast it to `dtype`, save it atomically to `target`."""
    import torch

    from layered.models import resolve_model
    from layered.pipeline import LayeredPipeline

    if (Path(source) / "training_state.json").is_file():  # a training checkpoint (FSDP-sharded or not)
        from training.models import pipeline_from_checkpoint

        pipe = pipeline_from_checkpoint(source).to(getattr(torch, dtype))
    else:
        pipe = LayeredPipeline.from_pretrained(resolve_model(source), dtype=getattr(torch, dtype))
    target = Path(target)
    card = (target / "README.md").read_text(encoding="utf-8") if (target / "README.md").is_file() else None
    with atomic_dir(target) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        if card is not None:
            (Path(tmp) / "README.md").write_text(card, encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    args = parser.parse_args()
    try:
        out = export_pipeline(args.source, args.target, args.dtype)
    except (LayeredError, OSError, ValueError) as exc:  # not a pipeline folder, unreadable weights
        print(f"export_pipeline: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
