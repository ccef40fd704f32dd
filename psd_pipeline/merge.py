"""`layered psd merge PART... -o DATASET`: one dataset from the partitions of a sharded `psd build`.

Each PART is the finished output of `psd build --num-shards N --shard-index I`. The merged folder holds every
part's Parquet shards (hard links where the filesystem allows, else copies; `--move` removes them from the parts
once the merge is in place), one `manifest.jsonl` and `failures.jsonl` in the order an unsharded build writes
them (sorted input paths), and a `report.json` computed from all records, so `datasets.load_dataset` and
`layered train --data` read it as one dataset. Parts built with other options, or covering the same partition or
the same files, are refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

from layered.errors import InputError
from layered.fileio import atomic_dir
from psd_pipeline.build import STATE_DIR, _write_jsonl
from psd_pipeline.report import make_report

# Fingerprint fields that differ between the partitions of one build; every other field must be equal.
_PER_PART = ("shard_index", "inputs", "inputs_sha256")


def read_part(folder: str | os.PathLike) -> dict:
    """A finished build's fingerprint, manifest records, report and shard paths; InputError if it is not one."""
    folder = Path(folder)
    try:
        fingerprint = json.loads((folder / STATE_DIR / "config.json").read_text(encoding="utf-8"))
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        parts = sorted((folder / STATE_DIR / "parts").glob("*.json"))
        chunks = [json.loads(p.read_text(encoding="utf-8")) for p in parts]
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: not the output of a finished `layered psd build` ({exc})") from None
    if len(records) != fingerprint.get("inputs"):
        raise InputError(f"{folder}: unfinished build ({len(records)} of {fingerprint.get('inputs')} inputs)")
    shards = [folder / chunk["shard"] for chunk in chunks if chunk.get("shard")]
    for shard in shards:
        if not shard.is_file():
            raise InputError(f"{folder}: shard {shard.name} is missing")
    return {"folder": folder, "fingerprint": fingerprint, "report": report, "records": records, "shards": shards}


def check_parts(parts: list[dict], allow_missing: bool = False) -> None:
    """Refuse parts of different builds, a partition given twice, a file in two parts, or missing partitions."""
    if not parts:
        raise InputError("no parts to merge")
    first = parts[0]
    shared = {k: v for k, v in first["fingerprint"].items() if k not in _PER_PART}
    seen_index: dict[int, Path] = {}
    seen_path: dict[str, Path] = {}
    for part in parts:
        other = {k: v for k, v in part["fingerprint"].items() if k not in _PER_PART}
        if other != shared:
            keys = sorted(k for k in set(shared) | set(other) if shared.get(k) != other.get(k))
            raise InputError(f"{part['folder']}: built with other options than {first['folder']} ({', '.join(keys)})")
        index = part["fingerprint"]["shard_index"]
        if index in seen_index:
            raise InputError(f"{part['folder']}: shard index {index} is also in {seen_index[index]}")
        seen_index[index] = part["folder"]
        for record in part["records"]:
            if record["path"] in seen_path:
                raise InputError(f"{part['folder']}: {record['path']} is also in {seen_path[record['path']]}")
            seen_path[record["path"]] = part["folder"]
    missing = sorted(set(range(shared["num_shards"])) - set(seen_index))
    if missing and not allow_missing:
        listed = ", ".join(map(str, missing))
        raise InputError(f"shard index {listed} of {shared['num_shards']} not given (--allow-missing to merge anyway)")


def merge(
    parts: list[str | os.PathLike], out: str | os.PathLike, move: bool = False, allow_missing: bool = False
) -> tuple[dict, str]:
    """Write the merged dataset to `out` (a new or empty folder, written atomically); (report, how shards came)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder")
    loaded = [read_part(p) for p in parts]
    for part in loaded:
        if out.resolve().is_relative_to(part["folder"].resolve()):  # the part itself, or a folder in it
            raise InputError(f"{out}: inside the part {part['folder']}")
    check_parts(loaded, allow_missing)
    shards = [
        shard for part in sorted(loaded, key=lambda p: p["fingerprint"]["shard_index"]) for shard in part["shards"]
    ]
    if len({s.name for s in shards}) != len(shards):
        raise InputError("two parts hold shards of the same name")
    records = sorted((r for part in loaded for r in part["records"]), key=lambda r: r["path"])
    report = _report(loaded, records, len(shards))
    linked = True
    with atomic_dir(out) as tmp:
        for shard in shards:
            try:
                os.link(shard, tmp / shard.name)
            except OSError:  # another filesystem (or no hard links): a copy
                shutil.copyfile(shard, tmp / shard.name)
                linked = False
        _write_jsonl(tmp / "manifest.jsonl", records)
        _write_jsonl(tmp / "failures.jsonl", [r for r in records if r["outcome"] != "accepted"])
        (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if move:  # only once the merged folder is complete and in place
        for shard in shards:
            shard.unlink()
    return report, "moved" if move else ("hard links" if linked else "copies")


def _report(parts: list[dict], records: list[dict], shards: int) -> dict:
    """The unsharded build's report of these records; throughput adds up the parts' runs."""
    runs = [part["report"].get("throughput", {}) for part in parts]
    total = {key: sum(run.get(key) or 0 for run in runs) for key in ("files", "layers", "seconds", "workers")}
    options = SimpleNamespace(min_psnr=parts[0]["fingerprint"]["options"]["min_psnr"])
    shim = SimpleNamespace(options=options, out=Path(os.devnull), workers=total["workers"])
    report = make_report(records, total["files"], total["layers"], total["seconds"], shim)
    report["shards"] = shards
    report["throughput"]["seconds"] = round(total["seconds"], 3)
    report["throughput"]["parts"] = len(parts)
    return report
