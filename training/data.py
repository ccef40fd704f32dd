"""Training data: Parquet shards of layer stacks -> aspect-ratio buckets -> deterministic batches.

A row (what `layered psd build` writes; README, "From Photoshop files to a training set") is `id`, `composite`
and `layers` (PNG images, full canvas, bottom-first) and `meta` (JSON, with the `caption`). Batch order is a pure
function of (seed, step), so `--resume` after a kill -9 sees the same next batch, and N processes each take their
slice of the same global batch (DDP == one process with an N-times larger batch).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from layered.errors import InputError
from layered.fileio import MAX_PIXELS, to_rgba_array
from layered.pixels import resize_rgba
from layered.stack import Layer, composite

if TYPE_CHECKING:
    from training.config import Config


@dataclass(frozen=True)
class RowRef:
    """Where a row lives and what decides its batch: canvas size and layer count."""

    shard: str
    row: int
    id: str
    width: int
    height: int
    num_layers: int


def list_shards(path: str | Path) -> list[Path]:
    """The Parquet shards of a dataset folder (sorted), or the one file given."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return [path]
    if not path.is_dir():
        raise InputError(f"dataset not found: {path}")
    shards = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not shards:
        raise InputError(f"no Parquet shards (*.parquet) under {path}")
    return shards


def _image_bytes(value) -> bytes:
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise InputError("dataset row has an image without bytes")
    return bytes(value)


def decode_image(value) -> np.ndarray:
    """PNG bytes (or a datasets image struct) -> H x W x 4 uint8, refusing images over MAX_PIXELS."""
    try:
        with Image.open(io.BytesIO(_image_bytes(value))) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InputError(f"dataset image of {image.width}x{image.height} exceeds the pixel limit")
            image.load()
            return to_rgba_array(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"dataset row has an undecodable image ({exc})") from None


def _image_size(value) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(_image_bytes(value))) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"dataset row has an undecodable image ({exc})") from None


def index_rows(path: str | Path) -> list[RowRef]:
    """Scan the shards once: each row's size (from the PNG header) and layer count, without decoding pixels."""
    import pyarrow.parquet as pq

    refs = []
    for shard in list_shards(path):
        try:
            table = pq.read_table(shard, columns=["id", "composite", "layers"])
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise InputError(f"{shard}: not a readable dataset shard ({exc})") from None
        ids = table.column("id").to_pylist()
        composites = table.column("composite").to_pylist()
        layers = table.column("layers").to_pylist()
        for row, (row_id, comp, stack) in enumerate(zip(ids, composites, layers, strict=True)):
            if not stack:
                continue
            width, height = _image_size(comp)
            refs.append(RowRef(str(shard), row, str(row_id), width, height, len(stack)))
        del table, composites, layers
    if not refs:
        raise InputError(f"dataset {path} has no rows with layers")
    return refs


class RowReader:
    """Random access to rows, keeping the last shard open (rows of a batch are often in one shard)."""

    def __init__(self) -> None:
        self._shard: str | None = None
        self._table = None

    def read(self, ref: RowRef) -> dict:
        import pyarrow.parquet as pq

        if ref.shard != self._shard:
            self._table = pq.read_table(ref.shard, columns=["id", "composite", "layers", "meta"])
            self._shard = ref.shard
        row = self._table.slice(ref.row, 1).to_pylist()[0]
        try:
            meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else dict(row["meta"] or {})
        except json.JSONDecodeError:
            meta = {}
        return {
            "id": str(row["id"]),
            "composite": decode_image(row["composite"]),
            "layers": [decode_image(v) for v in row["layers"]],
            "caption": str(meta.get("caption") or ""),
            "meta": meta,
        }


# --- buckets -------------------------------------------------------------------------------------------------


def make_buckets(resolution: int, ratios: list[float], multiple: int) -> list[tuple[int, int]]:
    """(width, height) buckets of about resolution**2 pixels, one per aspect ratio, sides multiples of `multiple`."""
    buckets = []
    for ratio in ratios:
        height = math.sqrt(resolution * resolution / ratio)
        width = height * ratio
        size = (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))
        if size not in buckets:
            buckets.append(size)
    return buckets


def config_buckets(config: Config) -> list[tuple[int, int]]:
    """The buckets of a run's `data` settings."""
    return make_buckets(config.data.resolution, config.data.bucket_ratios, config.data.multiple)


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to width/height (in log space: 2:1 and 1:2 are equally far)."""
    target = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - target))


def cap_layers(layers: list[np.ndarray], max_layers: int) -> list[np.ndarray]:
    """Merge the bottom layers until at most `max_layers` remain; the composite is unchanged."""
    layers = list(layers)
    if len(layers) <= max_layers:
        return layers
    height, width = layers[0].shape[:2]
    merge = len(layers) - max_layers + 1
    bottom = composite([Layer.from_canvas(px, f"L{i}") for i, px in enumerate(layers[:merge])], width, height)
    return [bottom, *layers[merge:]]


def to_model_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 H x W x 4 -> float32 4 x H x W in [-1, 1] (the VAE's input range)."""
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0


def prepare_row(row: dict, size: tuple[int, int], max_layers: int) -> dict:
    """Resize a decoded row to its bucket (premultiplied) and cap its layer count."""
    layers = cap_layers(row["layers"], max_layers)
    resize = (lambda px: px) if row["composite"].shape[1::-1] == size else (lambda px: resize_rgba(px, size))
    return {**row, "composite": resize(row["composite"]), "layers": [resize(px) for px in layers]}


# --- deterministic batch order -------------------------------------------------------------------------------


def batch_key(ref: RowRef, buckets: list[tuple[int, int]], max_layers: int) -> tuple[int, int, int]:
    width, height = nearest_bucket(ref.width, ref.height, buckets)
    return width, height, min(ref.num_layers, max_layers)


def epoch_plan(keys: list[tuple], global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """Row indices of every global batch of one epoch: rows shuffled, grouped by key, groups wrapped to fill."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(keys))
    groups: dict[tuple, list[int]] = {}
    for index in order.tolist():
        groups.setdefault(keys[index], []).append(index)
    batches = []
    for key in sorted(groups):
        members = groups[key]
        for start in range(0, len(members), global_batch):
            batch = members[start : start + global_batch]
            fill = 0
            while len(batch) < global_batch:  # a short last batch borrows rows from the start of its group
                batch.append(members[fill % len(members)])
                fill += 1
            batches.append(batch)
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def row_seed(seed: int, step: int, position: int) -> int:
    """A seed for one row of one step (noise, timestep, caption dropout) that does not depend on the process."""
    return int(np.random.SeedSequence([seed, step, position]).generate_state(1)[0])


@dataclass
class BatchPlan:
    """Which rows each process reads at each step."""

    refs: list[RowRef]
    buckets: list[tuple[int, int]]
    max_layers: int
    batch_size: int  # per process
    num_processes: int
    seed: int

    def __post_init__(self) -> None:
        self.keys = [batch_key(ref, self.buckets, self.max_layers) for ref in self.refs]
        self._epochs: dict[int, list[list[int]]] = {}

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_processes

    def global_rows(self, step: int) -> list[int]:
        """Row indices of the global batch at `step` (0-based optimizer micro-step)."""
        per_epoch = len(self._plan(0))
        epoch, position = divmod(step, per_epoch)
        return self._plan(epoch)[position]

    def process_rows(self, step: int, process_index: int) -> list[tuple[int, int]]:
        """(position in the global batch, row index) pairs that one process handles at `step`."""
        rows = self.global_rows(step)
        start = process_index * self.batch_size
        return [(start + i, rows[start + i]) for i in range(self.batch_size)]

    def _plan(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            self._epochs = {epoch: epoch_plan(self.keys, self.global_batch, self.seed, epoch)}
        return self._epochs[epoch]


@dataclass
class RunRows:
    """A run's rows: the first `data.held_out` kept for evaluation, the rest trained on in the order of `plan`."""

    train: list[RowRef]
    held: list[RowRef]
    buckets: list[tuple[int, int]]
    plan: BatchPlan


def split_rows(refs: list[RowRef], config: Config, num_processes: int) -> RunRows:
    """Held-out and training rows of `refs` (no held-out rows when `data.held_out` would take them all)."""
    data = config.data
    held = refs[: data.held_out] if data.held_out < len(refs) else []
    train = refs[len(held) :]
    buckets = config_buckets(config)
    plan = BatchPlan(train, buckets, data.max_layers, data.batch_size, num_processes, config.seed)
    return RunRows(train=train, held=held, buckets=buckets, plan=plan)


def iter_steps(plan: BatchPlan, start_step: int, process_index: int) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """(step, rows) from `start_step` on, forever: the caller stops at max_steps."""
    step = start_step
    while True:
        yield step, plan.process_rows(step, process_index)
        step += 1
