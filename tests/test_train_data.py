"""Training data: Parquet rows, buckets, layer caps, deterministic batches; and the shard writer other tests use."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import pil_composite
from PIL import Image

from layered.errors import InputError
from layered.stack import LayerStack
from training.config import config_from_dict, load_config
from training.data import (
    BatchPlan,
    RowReader,
    cap_layers,
    epoch_plan,
    index_rows,
    make_buckets,
    nearest_bucket,
    prepare_row,
)

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def _png(pixels: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def random_layers(rng: np.random.Generator, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """An opaque solid background plus `count - 1` solid rectangles (partly transparent), full canvas."""
    width, height = size
    background = np.zeros((height, width, 4), np.uint8)
    background[...] = (*rng.integers(0, 256, 3), 255)
    layers = [background]
    for _ in range(count - 1):
        layer = np.zeros((height, width, 4), np.uint8)
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        layer[y0 : y0 + height // 2, x0 : x0 + width // 2] = (*rng.integers(0, 256, 3), int(rng.choice([128, 255])))
        layers.append(layer)
    return layers


def write_shards(folder: Path, rows: int, *, size=(32, 32), layers=3, seed=0, shards=1, captions=True) -> Path:
    """Parquet shards in `layered psd build`'s row format (id, composite, layers, meta: training.data) via pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    table_rows = []
    for i in range(rows):
        count = layers if isinstance(layers, int) else layers[i % len(layers)]
        canvas = size if isinstance(size[0], int) else size[i % len(size)]
        pixels = random_layers(rng, canvas, count)
        stack = LayerStack.from_images(pixels, [f"L{k}" for k in range(count)])
        meta = {"caption": f"picture number {i}" if captions else "", "source": f"synthetic/{i}.psd"}
        table_rows.append(
            {
                "id": f"row-{i:04d}",
                "composite": _png(pil_composite(stack)),
                "layers": [_png(px) for px in pixels],
                "meta": json.dumps(meta),
            }
        )
    per = math.ceil(rows / shards)
    for s in range(shards):
        part = table_rows[s * per : (s + 1) * per]
        if part:
            pq.write_table(pa.Table.from_pylist(part), folder / f"train-{s:05d}.parquet")
    return folder


def test_index_and_read_rows(tmp_path):
    write_shards(tmp_path, rows=5, size=[(32, 32), (48, 32)], layers=[2, 3], shards=2)
    refs = index_rows(tmp_path)
    assert [r.id for r in refs] == [f"row-{i:04d}" for i in range(5)]
    assert [(r.width, r.height, r.num_layers) for r in refs[:2]] == [(32, 32, 2), (48, 32, 3)]
    row = RowReader().read(refs[1])
    assert row["caption"] == "picture number 1"
    assert len(row["layers"]) == 3 and row["composite"].shape == (32, 48, 4)
    stack = LayerStack.from_images(row["layers"], ["a", "b", "c"])
    np.testing.assert_array_equal(row["composite"], pil_composite(stack))


def test_bad_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no Parquet shards"):
        index_rows(tmp_path)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable dataset shard"):
        index_rows(tmp_path)


def test_buckets_keep_area_and_multiples():
    buckets = make_buckets(640, [1.0, 4 / 3, 3 / 4, 16 / 9], 16)
    for width, height in buckets:
        assert width % 16 == 0 and height % 16 == 0
        assert abs(width * height / 640**2 - 1) < 0.06
    assert buckets[0] == (640, 640)
    assert nearest_bucket(1920, 1080, buckets) == buckets[3]
    assert nearest_bucket(300, 400, buckets) == buckets[2]


def test_cap_layers_keeps_the_composite(rng):
    pixels = random_layers(rng, (24, 16), 6)
    capped = cap_layers(pixels, 3)
    assert len(capped) == 3
    np.testing.assert_array_equal(capped[1:], pixels[4:])  # the top layers are untouched
    before = pil_composite(LayerStack.from_images(pixels, list("abcdef")))
    after = pil_composite(LayerStack.from_images(capped, list("abc")))
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 1


def test_prepare_row_resizes_every_frame(rng):
    pixels = random_layers(rng, (48, 32), 2)
    row = {"composite": pixels[0], "layers": pixels, "caption": ""}
    out = prepare_row(row, (32, 32), max_layers=20)
    assert out["composite"].shape == (32, 32, 4) and all(px.shape == (32, 32, 4) for px in out["layers"])


def test_batches_group_by_key_cover_the_epoch_and_are_reproducible():
    keys = [("a", 1)] * 5 + [("b", 2)] * 3 + [("c", 3)]
    plan = epoch_plan(keys, global_batch=2, seed=7, epoch=0)
    assert plan == epoch_plan(keys, global_batch=2, seed=7, epoch=0)
    assert plan != epoch_plan(keys, global_batch=2, seed=7, epoch=1)
    assert all(len(batch) == 2 and len({keys[i] for i in batch}) == 1 for batch in plan)
    assert set(i for batch in plan for i in batch) == set(range(len(keys)))
    assert len(plan) == 3 + 2 + 1


def test_processes_split_the_same_global_batch(tmp_path):
    write_shards(tmp_path, rows=8, layers=[2, 3])
    refs = index_rows(tmp_path)
    buckets = make_buckets(32, [1.0], 16)
    one = BatchPlan(refs, buckets, 20, batch_size=4, num_processes=1, seed=3)
    two = BatchPlan(refs, buckets, 20, batch_size=2, num_processes=2, seed=3)
    for step in range(6):
        assert one.process_rows(step, 0) == two.process_rows(step, 0) + two.process_rows(step, 1)


def test_config_overrides_and_errors(tmp_path):
    config = load_config(CONFIGS / "tiny_i2l.yaml", {"train.max_steps": 7, "data.path": "x", "model.vae": None})
    assert config.train.max_steps == 7 and config.data.path == "x" and config.stage == "i2l"
    assert config.train.learning_rate == pytest.approx(1e-3)
    with pytest.raises(InputError, match="unknown key"):
        config_from_dict({"train": {"max_stepz": 3}})
    with pytest.raises(InputError, match="stage"):
        config_from_dict({"stage": "t2x"})
    with pytest.raises(InputError, match="must be a number"):
        config_from_dict({"train": {"learning_rate": "fast"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)
