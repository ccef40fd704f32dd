"""The latent/text-embedding cache: training from it gives the same losses as encoding on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_data import write_shards

from layered.errors import InputError
from training.cache import CacheSource, write_cache
from training.config import load_config
from training.data import index_rows
from training.mmdit import train_mmdit

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_i2l.yaml"


def test_cached_run_equals_online_run(tmp_path):
    data = write_shards(tmp_path / "ds", rows=4, layers=[2, 3])
    settings = {"data.path": str(data), "train.max_steps": 3, "train.report_to": None, "data.batch_size": 2}
    write_cache(load_config(CONFIG, settings), tmp_path / "cache")
    online = train_mmdit(load_config(CONFIG, {**settings, "output_dir": str(tmp_path / "a")}))
    cached = train_mmdit(
        load_config(CONFIG, {**settings, "output_dir": str(tmp_path / "b"), "data.cache": str(tmp_path / "cache")})
    )
    assert cached["losses"] == pytest.approx(online["losses"], rel=1e-5)


def test_cache_missing_rows_is_an_input_error(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    write_cache(load_config(CONFIG, {"data.path": str(data)}), tmp_path / "cache")
    more = write_shards(tmp_path / "more", rows=3, layers=2)
    with pytest.raises(InputError, match="cache lacks 1 dataset rows"):
        CacheSource(tmp_path / "cache", index_rows(more))


def test_cache_from_other_settings_is_an_input_error(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    write_cache(load_config(CONFIG, {"data.path": str(data)}), tmp_path / "cache")
    config = load_config(CONFIG, {"data.path": str(data), "data.max_layers": 2, "output_dir": str(tmp_path / "o")})
    config.data.cache = str(tmp_path / "cache")
    with pytest.raises(InputError, match="cache built with max_layers=4"):
        train_mmdit(config)
