"""The dataset reader agrees with Hugging Face `datasets` on the same shards."""

from __future__ import annotations

import json

import numpy as np

from psd_pipeline.build import BuildConfig, build
from psd_pipeline.dataset import iter_samples
from psd_pipeline.synth import write_designs


def test_iter_samples_matches_datasets(tmp_path):
    import datasets

    write_designs(tmp_path / "src", 5, seed=4, size=40, style="flat")
    build(BuildConfig(tmp_path / "src", tmp_path / "ds", progress=False, shard_rows=2), log=lambda _message: None)
    ours = list(iter_samples(tmp_path / "ds"))
    theirs = datasets.load_dataset("parquet", data_files=str(tmp_path / "ds" / "*.parquet"), split="train")
    assert len(ours) == len(theirs) == 5
    for (sample_id, composite, layers, meta), row in zip(ours, theirs, strict=True):
        assert sample_id == row["id"]
        np.testing.assert_array_equal(composite, np.asarray(row["composite"].convert("RGBA")))
        assert len(layers) == len(row["layers"])
        for a, b in zip(layers, row["layers"], strict=True):
            np.testing.assert_array_equal(a, np.asarray(b.convert("RGBA")))
            assert a.shape == composite.shape
        assert meta == json.loads(row["meta"])
