"""Dataset shards: what `write_shard` builds from buffers equals what pyarrow builds from the same Python rows."""

from __future__ import annotations

import json

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from layered.errors import LayeredError  # noqa: E402
from psd_pipeline.shards import schema, write_shard  # noqa: E402

ROWS = [
    {"id": "designs/ü née.psd", "composite": b"\x89PNG\r\n", "layers": [b"one", b"", b"three"], "meta": '{"a": "é"}'},
    {"id": "", "composite": b"", "layers": [], "meta": json.dumps({"caption": "二"})},
    {"id": "x", "composite": bytes(range(256)), "layers": [b"\x00" * 1000], "meta": "{}"},
]


def _reference(rows: list[dict]):
    """The same rows through pyarrow's own converter (`Table.from_pylist`), the layout datasets reads."""
    records = [
        {
            "id": row["id"],
            "composite": {"bytes": row["composite"], "path": None},
            "layers": [{"bytes": data, "path": None} for data in row["layers"]],
            "meta": row["meta"],
        }
        for row in rows
    ]
    return pa.Table.from_pylist(records, schema=schema())


def test_shard_equals_pyarrows_conversion_of_the_rows(tmp_path):
    ours = pq.read_table(write_shard(ROWS, tmp_path / "ours.parquet"))
    pq.write_table(_reference(ROWS), tmp_path / "ref.parquet", compression="none", row_group_size=16)
    reference = pq.read_table(tmp_path / "ref.parquet")
    assert ours.equals(reference, check_metadata=True)
    assert ours.to_pylist()[0]["layers"][2] == {"bytes": b"three", "path": None}
    assert json.loads(ours.schema.metadata[b"huggingface"])["info"]["features"]["composite"] == {"_type": "Image"}


def test_rows_past_int32_offsets_are_split_into_chunks(tmp_path, monkeypatch):
    import psd_pipeline.shards as shards

    assert shards._offsets([3, 0, 4]).to_pylist() == [0, 3, 3, 7]
    with pytest.raises(shards._TooLarge):
        shards._offsets([2**30, 2**30])
    original = shards._offsets

    def small_limit(lengths):  # as if 2 GiB were 600 bytes: every row alone fits, no two rows together
        if sum(lengths) > 600:
            raise shards._TooLarge
        return original(lengths)

    monkeypatch.setattr(shards, "_offsets", small_limit)
    rows = [{"id": f"r{k}", "composite": bytes([k]) * 400, "layers": [b"x" * 100], "meta": "{}"} for k in range(5)]
    table = pq.read_table(write_shard(rows, tmp_path / "chunked.parquet"))
    assert table.equals(_reference(rows))
    with pytest.raises(LayeredError, match="r9: its images pass 2 GiB"):
        write_shard([{"id": "r9", "composite": b"y" * 700, "layers": [], "meta": "{}"}], tmp_path / "big.parquet")
