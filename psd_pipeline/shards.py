"""Dataset shards: Parquet files in the Hugging Face `datasets` Image layout, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [
            {
                "id": row["id"],
                "composite": {"bytes": row["composite"], "path": None},
                "layers": [{"bytes": data, "path": None} for data in row["layers"]],
                "meta": row["meta"],
            }
            for row in rows
        ],
        schema=schema(),
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        # PNG bytes do not compress further; row groups of a few rows keep readers' memory small
        pq.write_table(table, tmp, compression="none", row_group_size=16)
    return path


def row_bytes(row: dict) -> int:
    return len(row["composite"]) + sum(len(b) for b in row["layers"]) + len(row["meta"])
