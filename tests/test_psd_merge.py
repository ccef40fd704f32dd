"""`layered psd merge`: three partitions of a build merge into the dataset one unsharded build writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from layered.cli import main
from psd_pipeline.build import BuildConfig, build
from psd_pipeline.dataset import iter_samples
from psd_pipeline.sample import SampleOptions
from psd_pipeline.synth import write_designs

TIMING = ("seconds",)  # per-record fields that measure the run, not the data


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    write_designs(src / "a", 9, seed=3, size=48)
    write_designs(src / "b", 6, seed=4, size=40)
    whole = (src / "a" / "design_1.psd").read_bytes()
    (src / "b" / "truncated.psd").write_bytes(whole[: len(whole) // 3])  # rejected: a row in failures.jsonl
    (src / "not_a_psd.psd").write_bytes(b"plain text, not a Photoshop file")
    return src


def _build(src: Path, out: Path, **kwargs) -> Path:
    build(BuildConfig(src, out, progress=False, **kwargs), log=lambda _message: None)
    return out


@pytest.fixture(scope="module")
def builds(source, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("builds")
    whole = _build(source, tmp / "whole")
    parts = [_build(source, tmp / f"part{i}", num_shards=3, shard_index=i, shard_rows=4) for i in range(3)]
    return tmp, whole, parts


def _jsonl(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _rows(folder: Path) -> dict:
    return {i: (c.tobytes(), [x.tobytes() for x in layers], meta) for i, c, layers, meta in iter_samples(folder)}


def test_three_partitions_merge_into_the_unsharded_build(builds, capsys):
    tmp, whole, parts = builds
    merged = tmp / "merged"
    old = os.umask(0o022)
    try:
        assert main(["psd", "merge", *map(str, parts), "-o", str(merged)]) == 0
    finally:
        os.umask(old)
    assert "rows in" in capsys.readouterr().out
    assert all(len(list(p.glob("*.parquet"))) for p in parts)  # the parts are intact (hard links)
    assert _rows(merged) == _rows(whole) and len(_rows(whole)) == 15
    assert _jsonl(merged / "manifest.jsonl") == _jsonl(whole / "manifest.jsonl")
    failures = _jsonl(merged / "failures.jsonl")
    assert failures == _jsonl(whole / "failures.jsonl") and {r["path"] for r in failures} == {
        "b/truncated.psd",
        "not_a_psd.psd",
    }
    ours, theirs = (json.loads((f / "report.json").read_text()) for f in (merged, whole))
    shards = sorted(p.name for p in merged.glob("*.parquet"))
    assert ours["shards"] == len(shards) == sum(len(list(p.glob("*.parquet"))) for p in parts) > 3
    assert {k: v for k, v in ours.items() if k not in ("throughput", "shards")} == {
        k: v for k, v in theirs.items() if k not in ("throughput", "shards")
    }
    assert ours["throughput"]["files"] == theirs["throughput"]["files"] == 17
    for path in merged.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE(merged.stat().st_mode) == 0o755

    from datasets import load_dataset

    from training.data import list_shards

    loaded = load_dataset("parquet", data_files=str(merged / "*.parquet"), split="train")
    assert sorted(loaded["id"]) == sorted(_rows(whole))
    assert [p.name for p in list_shards(merged)] == shards  # what `layered train --data` reads


def _refused(capsys, *args) -> str:
    assert main(["psd", "merge", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_refusals_are_one_line_and_write_nothing(builds, source, capsys):
    tmp, whole, parts = builds
    out = tmp / "refused"
    assert "shard index 0 is also in" in _refused(capsys, parts[0], parts[0], parts[1], parts[2], "-o", out)
    assert "shard index 2 of 3 not given" in _refused(capsys, parts[0], parts[1], "-o", out)
    fewer = SampleOptions(max_layers=2)
    other = _build(source, tmp / "other1", num_shards=3, shard_index=1, shard_rows=4, options=fewer)
    assert "built with other options" in _refused(capsys, parts[0], other, parts[2], "-o", out)
    assert "other options" in _refused(capsys, whole, parts[1], "-o", out)  # an unsharded build is another build
    assert "not the output of a finished" in _refused(capsys, parts[0], source, "-o", out)
    assert not out.exists()
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "not an empty folder" in _refused(capsys, *parts, "-o", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert "inside the part" in _refused(capsys, *parts, "-o", parts[0] / "sub")
    unfinished = tmp / "unfinished"
    _build(source, unfinished, num_shards=3, shard_index=2, shard_rows=4)
    (unfinished / "manifest.jsonl").write_text("")
    assert "unfinished build" in _refused(capsys, parts[0], parts[1], unfinished, "-o", out / "x")


def test_allow_missing_and_move(builds, source, tmp_path, capsys):
    _tmp, _whole, parts = builds
    copies = [_build(source, tmp_path / f"p{i}", num_shards=3, shard_index=i, shard_rows=4) for i in range(3)]
    assert main(["psd", "merge", str(parts[0]), str(parts[2]), "-o", str(tmp_path / "some"), "--allow-missing"]) == 0
    assert set(_rows(tmp_path / "some")) == set(_rows(parts[0])) | set(_rows(parts[2]))
    assert main(["psd", "merge", *map(str, copies), "-o", str(tmp_path / "moved"), "--move"]) == 0
    assert "(moved)" in capsys.readouterr().out
    assert not any(list(p.glob("*.parquet")) for p in copies)
    assert set(_rows(tmp_path / "moved")) == set().union(*(_rows(p) for p in parts))
