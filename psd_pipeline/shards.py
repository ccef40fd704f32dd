"""Dataset shards: Parquet files in the Hugging Face `datasets` Image layout, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from layered.errors import LayeredError
from layered.fileio import atomic_path

# What `datasets.Features({...}).arrow_schema` records; "Sequence" is read by datasets 3.x and later.
HF_FEATURES = {
    "id": {"dtype": "string", "_type": "Value"},
    "composite": {"_type": "Image"},
    "layers": {"feature": {"_type": "Image"}, "_type": "Sequence"},
    "meta": {"dtype": "string", "_type": "Value"},
}


def schema():
    """The Arrow schema of a shard: images as struct{bytes, path}, as `datasets.Image` stores them."""
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [("id", pa.string()), ("composite", image), ("layers", pa.list_(image)), ("meta", pa.string())]
    metadata = {b"huggingface": json.dumps({"info": {"features": HF_FEATURES}}).encode()}
    return pa.schema(fields, metadata=metadata)


def write_shard(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write rows ({id, composite: PNG bytes, layers: [PNG bytes], meta: JSON str}) as one Parquet file."""
    import pyarrow.parquet as pq

    table = _table(rows)
    path = Path(path)
    with atomic_path(path) as tmp:
        # PNG bytes do not compress further; row groups of a few rows keep readers' memory small
        pq.write_table(table, tmp, compression="none", row_group_size=16)
    return path


MAX_ROW_BYTES = 2**31  # Arrow's 32-bit offsets: one column of one row holds less than this


class _TooLarge(ValueError):
    """A column of Arrow's 32-bit offsets would pass 2 GiB."""


def _table(rows: list[dict]):
    """The rows as one Arrow table; columns past 2 GiB are split into chunks, as `pa.array` would."""
    import pyarrow as pa

    target = schema()
    image = target.field("composite").type
    try:
        columns = [
            _blobs([row["id"].encode("utf-8") for row in rows], pa.string()),
            _images([row["composite"] for row in rows], image),
            pa.ListArray.from_arrays(
                _offsets([len(row["layers"]) for row in rows]),
                _images([b for row in rows for b in row["layers"]], image),
            ),
            _blobs([row["meta"].encode("utf-8") for row in rows], pa.string()),
        ]
    except _TooLarge:
        if len(rows) == 1:
            raise LayeredError(f"{rows[0]['id']}: its images pass 2 GiB, more than one Parquet row holds") from None
        half = len(rows) // 2
        return pa.concat_tables([_table(rows[:half]), _table(rows[half:])])
    return pa.Table.from_arrays(columns, schema=target)


# The columns are built from buffers: `pa.array` and `Table.from_pylist` import pandas (0.35 s) to probe their
# input, a cost the builder would pay after its last file, while every worker is idle.


def _offsets(lengths: list[int]):
    """Arrow int32 offsets (0, then the running sum of `lengths`)."""
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= MAX_ROW_BYTES:
        raise _TooLarge
    return pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets.astype(np.int32))])


def _blobs(values: list[bytes], kind):
    """A binary (or, for UTF-8 bytes, string) Arrow array of `values`."""
    import pyarrow as pa

    offsets = _offsets([len(v) for v in values])
    return pa.Array.from_buffers(kind, len(values), [None, *offsets.buffers()[1:], pa.py_buffer(b"".join(values))])


def _images(blobs: list[bytes], image):
    """`datasets.Image` structs {bytes, path: null} of PNG `blobs`."""
    import pyarrow as pa

    return pa.StructArray.from_arrays(
        [_blobs(blobs, pa.binary()), pa.nulls(len(blobs), pa.string())], fields=list(image)
    )


def row_bytes(row: dict) -> int:
    return len(row["composite"]) + sum(len(b) for b in row["layers"]) + len(row["meta"])
