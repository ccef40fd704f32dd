"""Fuzzing `layered psd build`: 50 seeded, structure-aware mutations of real corpus files (issue 18).

Every mutated file must give exactly one manifest row with a known outcome, the build must exit 0 with no
traceback, and the rows written must be exactly the accepted ones.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

SOURCES = [
    "1layer.psd",
    "2layers.psb",
    "16bit5x5.psb",
    "32bit5x5.psd",
    "group.psd",
    "mask.psd",
    "text.psd",
    "vector-mask3.psd",
    "layer-name-emoji.psd",
    "blend-modes/multiply.psd",
    "effects/shape-fx.psd",
]
CASES = 50
OUTCOMES = {"accepted", "rejected", "skipped", "timeout", "crashed"}


def sections(data: bytes) -> dict[str, int]:
    """Offsets of the length fields of a PSD/PSB's sections, read from the (unmutated) file."""
    psb = struct.unpack(">H", data[4:6])[0] == 2
    wide = 8 if psb else 4
    offsets = {"colour_mode": 26}
    cursor = 26 + 4 + struct.unpack(">I", data[26:30])[0]
    offsets["resources"] = cursor
    cursor += 4 + struct.unpack(">I", data[cursor : cursor + 4])[0]
    offsets["layer_and_mask"] = cursor
    offsets["layer_info"] = cursor + wide
    offsets["layer_count"] = cursor + 2 * wide
    offsets["wide"] = wide
    return offsets


def _flip(out: bytearray, _where: dict, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 64)):
        out[rng.randrange(26, len(out))] ^= 1 << rng.randrange(8)


def _truncate(out: bytearray, _where: dict, rng: random.Random) -> None:
    del out[rng.randrange(0, len(out)) :]


def _header(out: bytearray, _where: dict, rng: random.Random) -> None:
    field, size = rng.choice([(4, 2), (12, 2), (14, 4), (18, 4), (22, 2), (24, 2)])
    value = rng.choice([0, 1, 3, 7, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << (8 * size))])
    out[field : field + size] = (value % (1 << (8 * size))).to_bytes(size, "big")


def _length(out: bytearray, where: dict, rng: random.Random) -> None:
    name = rng.choice(["colour_mode", "resources", "layer_and_mask", "layer_info"])
    size = 4 if name in ("colour_mode", "resources") else where["wide"]
    offset = where[name]
    current = int.from_bytes(out[offset : offset + size], "big")
    value = rng.choice([0, current + rng.randint(1, 64), max(0, current - rng.randint(1, 64)), (1 << 31) - 1])
    out[offset : offset + size] = value.to_bytes(size, "big")


def _layer_count(out: bytearray, where: dict, rng: random.Random) -> None:
    offset = where["layer_count"]
    out[offset : offset + 2] = struct.pack(">h", rng.choice([-32768, -1, 0, 999, 32767, rng.randint(-50, 50)]))


def _zero(out: bytearray, where: dict, rng: random.Random) -> None:
    start = rng.randrange(min(where["layer_count"], len(out) - 1), len(out))
    end = min(len(out), start + rng.randint(16, 4096))
    out[start:end] = bytes(end - start)


def _splice(out: bytearray, _where: dict, rng: random.Random) -> None:
    start = rng.randrange(26, len(out))
    span = bytes(out[start : start + rng.randint(1, 2048)])
    if rng.random() < 0.5:
        del out[start : start + len(span)]
    else:
        out[start:start] = span


def _resources(out: bytearray, where: dict, rng: random.Random) -> None:
    start, end = where["resources"] + 4, where["layer_and_mask"]
    for _ in range(rng.randint(1, 32)):
        if end > start:
            out[rng.randrange(start, end)] = rng.randrange(256)


MUTATIONS = {
    "flip": _flip,
    "truncate": _truncate,
    "header": _header,
    "length": _length,
    "layer_count": _layer_count,
    "zero": _zero,
    "splice": _splice,
    "resources": _resources,
}


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """One mutation of `kind`, drawn from `rng`: bit flips, truncation, header fields, section lengths..."""
    out = bytearray(data)
    where = sections(data)
    if kind not in MUTATIONS:
        raise ValueError(kind)
    MUTATIONS[kind](out, where, rng)
    return bytes(out)


KINDS = list(MUTATIONS)


@pytest.fixture(scope="module")
def fuzz_build(shared_dir, tmp_path_factory):
    rng = random.Random(18)
    src = tmp_path_factory.mktemp("fuzz") / "src"
    src.mkdir()
    for case in range(CASES):
        source = SOURCES[case % len(SOURCES)]
        kind = KINDS[case % len(KINDS)]
        data = mutate((shared_dir / "psd-corpus" / source).read_bytes(), kind, rng)
        suffix = Path(source).suffix
        (src / f"{case:02d}-{kind}-{Path(source).stem}{suffix}").write_bytes(data)
    out = src.parent / "out"
    command = [sys.executable, "-m", "layered", "psd", "build", str(src), "-o", str(out), "--workers", "2"]
    done = subprocess.run(
        [*command, "--no-progress", "--file-timeout", "60"], capture_output=True, text=True, timeout=600
    )
    return src, out, done


def test_every_mutated_file_has_one_row_and_the_build_exits_0(fuzz_build):
    src, out, done = fuzz_build
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["path"] for r in records] == sorted(p.name for p in src.iterdir())
    assert len(records) == CASES
    for record in records:
        assert record["outcome"] in OUTCOMES, record
        assert (record["reason"] is None) == (record["outcome"] == "accepted"), record
        if record["outcome"] != "accepted":
            assert record["detail"] and "\n" not in record["detail"], record
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [f["path"] for f in failures] == [r["path"] for r in records if r["outcome"] != "accepted"]


def test_rows_are_exactly_the_accepted_files_and_pass_the_gate(fuzz_build):
    from psd_pipeline.dataset import iter_samples

    _src, out, _done = fuzz_build
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    accepted = {r["path"] for r in records if r["outcome"] == "accepted"}
    rows = list(iter_samples(out))
    assert {meta["source"] for *_rest, meta in rows} == accepted
    assert all(meta["psnr"] >= 40.0 for *_rest, meta in rows)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["inputs"] == CASES and report["rows"] == len(accepted)
    # the mutations reach past the header: some files still decode, most are refused for a stated reason
    assert 0 < len(accepted) < CASES
    assert len(report["by_reason"]) >= 3, report["by_reason"]
