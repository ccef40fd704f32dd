"""Read a dataset written by `layered psd build`: for training code and tests (no `datasets` needed)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image


def shard_paths(dataset_dir: str | os.PathLike) -> list[Path]:
    """The Parquet shards of a dataset folder, in build order."""
    return sorted(Path(dataset_dir).glob("*.parquet"))


def iter_samples(dataset_dir: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, list[np.ndarray], dict]]:
    """Yield (id, composite H x W x 4 uint8, [layer H x W x 4 uint8, bottom-first], meta dict) per row."""
    import pyarrow.parquet as pq

    for path in shard_paths(dataset_dir):
        shard = pq.ParquetFile(path)
        for group in range(shard.num_row_groups):
            for row in shard.read_row_group(group).to_pylist():
                composite = _decode(row["composite"]["bytes"])
                layers = [_decode(item["bytes"]) for item in row["layers"]]
                yield row["id"], composite, layers, json.loads(row["meta"])


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))
