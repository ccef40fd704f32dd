"""`layered psd build`: a folder of PSD files -> Parquet shards + manifest, in parallel and resumable.

Inputs are processed by a process pool; results are consumed in input order, so the output does not
depend on the number of workers. Every `checkpoint_every` inputs, or when the current shard is full,
the shard is written atomically and then a checkpoint part (`.build/parts/NNNNN.json`) with the
manifest records it covers. `--resume` reloads the parts and starts after the last one: the rows are
the same as a clean build's because shard boundaries depend only on the (deterministic) results.
A worker that dies (segfault, killed for memory) breaks the pool: the files that were in flight are
rerun one by one in fresh processes, and the one that kills its worker again is recorded as `crashed`.
Anything that is not a regular file (a FIFO, a device, a socket) is never opened: it is `skipped`. Each
file runs under a time limit enforced in its worker (`--file-timeout`): past it, the file is a `timeout`
row; a worker stuck where the alarm cannot interrupt it ends itself and its file is rerun alone, under a
hard limit, as above.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from layered.errors import InputError, LayeredError
from layered.fileio import atomic_path
from layered.formats import PSD_SUFFIXES
from layered.ownership import check_output_folder
from psd_pipeline.report import make_report
from psd_pipeline.sample import SampleOptions, process_file
from psd_pipeline.shards import MAX_ROW_BYTES, row_bytes, write_shard

STATE_DIR = ".build"
BUILD_MARKER = f"{STATE_DIR}/config.json"  # written first: a folder holding it is a build of ours
BUILD_FILES = ("manifest.jsonl", "failures.jsonl", "report.json")
DEFAULT_FILE_TIMEOUT = 600.0  # seconds per file; corpus files take well under 2 s, large real PSDs minutes
WATCHDOG_EXIT = 124  # exit status of a worker that ended itself after its file ran past the hard limit


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    src: Path
    out: Path
    options: SampleOptions = SampleOptions()
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    num_shards: int = 1
    shard_index: int = 0
    caption_model: str | None = None
    shard_rows: int = 500
    shard_bytes: int = 256 << 20
    checkpoint_every: int = 200
    progress: bool = True
    file_timeout: float | None = DEFAULT_FILE_TIMEOUT


def find_inputs(src: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every .psd/.psb file under `src`, sorted (symlinked folders not followed)."""
    src = Path(src)
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.lower().endswith(PSD_SUFFIXES) and not name.startswith("."):
                found.append((Path(root) / name).relative_to(src).as_posix())
    return sorted(found)


def in_partition(relative: str, num_shards: int, shard_index: int) -> bool:
    """Deterministic partition by a hash of the relative path: stable when other files come and go."""
    digest = hashlib.sha1(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards == shard_index


def shard_name(config: BuildConfig, number: int) -> str:
    part = "" if config.num_shards == 1 else f"p{config.shard_index:04d}of{config.num_shards:04d}-"
    return f"data-{part}{number:05d}.parquet"


def validate(config: BuildConfig) -> None:
    """Refuse what cannot run at all (exit status 2 from the CLI)."""
    if not config.src.is_dir():
        raise InputError(f"{config.src}: not a folder")
    if config.workers < 1:
        raise InputError("--workers must be at least 1")
    if config.options.max_layers < 1:
        raise InputError("--max-layers must be at least 1")
    if config.options.max_side is not None and config.options.max_side < 8:
        raise InputError("--max-side must be at least 8")
    if not 0 <= config.options.min_visible < 1:
        raise InputError("--min-visible must be in [0, 1)")
    if config.num_shards < 1 or not 0 <= config.shard_index < config.num_shards:
        raise InputError("--shard-index must be in [0, --num-shards)")
    if config.file_timeout is not None and not 0 < config.file_timeout <= 7 * 86400:
        raise InputError("--file-timeout must be a number of seconds above 0 and at most 604800 (a week)")
    out = config.out.resolve()
    if out == config.src.resolve():
        raise InputError("the output folder must not be the source folder")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise LayeredError("layered psd build writes Parquet and needs pyarrow: pip install 'layered[train]'") from None
    ours = check_output_folder(config.out, BUILD_MARKER, config.overwrite)  # an earlier build's folder
    if ours and not config.resume and not config.overwrite and not (config.out / "report.json").is_file():
        raise InputError(f"{config.out}: holds an unfinished build (use --resume to continue it, or --overwrite)")


def build(config: BuildConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the build and return the report; bad files are outcomes, never exceptions."""
    log = log or (lambda message: print(message, file=sys.stderr))
    validate(config)
    if not config.resume:
        _clear_previous_build(config.out)
    inputs = [p for p in find_inputs(config.src) if in_partition(p, config.num_shards, config.shard_index)]
    state = config.out / STATE_DIR
    fingerprint = _fingerprint(config, inputs)
    try:
        (state / "parts").mkdir(parents=True, exist_ok=True)
        done_records, next_index, next_shard = _load_state(state, fingerprint, config.resume)
        if not (state / "config.json").exists():
            with atomic_path(state / "config.json") as tmp:
                tmp.write_text(json.dumps(fingerprint, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise LayeredError(f"cannot write to {config.out}: {exc}") from None
    if next_index:
        log(f"resuming: {next_index} of {len(inputs)} inputs already done")
    captioner = _captioner(config, log)
    start = time.perf_counter()
    writer = _Writer(config, state, next_index, next_shard)
    tasks = [(i, str(config.src / inputs[i]), inputs[i]) for i in range(next_index, len(inputs))]
    bar = _progress(config, len(inputs), next_index)
    run_layers = 0
    try:
        for index, produced in run_ordered(tasks, config.workers, config.options, timeout=config.file_timeout):
            result = _within_row_limit(produced)
            if result["row"] is not None:
                run_layers += len(result["row"]["layers"])
                if captioner is not None:
                    result["row"] = captioner(result["row"])
            writer.add(index, result)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(result["record"]["outcome"], refresh=False)
        writer.flush(len(inputs))
    except OSError as exc:
        raise LayeredError(f"cannot write to {config.out}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    records = done_records + writer.records
    report = make_report(records, len(tasks), run_layers, seconds, config)
    try:
        _finish(config, records, report)
    except OSError as exc:
        raise LayeredError(f"cannot write to {config.out}: {exc}") from None
    return report


class _Writer:
    """Buffers results in input order and commits shard + checkpoint part at deterministic boundaries."""

    def __init__(self, config: BuildConfig, state: Path, next_index: int, next_shard: int) -> None:
        self.config, self.state = config, state
        self.first = next_index
        self.shard = next_shard
        self.rows: list[dict] = []
        self.pending: list[dict] = []
        self.records: list[dict] = []
        self.size = 0

    def add(self, index: int, result: dict) -> None:
        self.pending.append(result["record"])
        if result["row"] is not None:
            self.rows.append(result["row"])
            self.size += row_bytes(result["row"])
        full = len(self.rows) >= self.config.shard_rows or self.size >= self.config.shard_bytes
        if full or len(self.pending) >= self.config.checkpoint_every:
            self.flush(index + 1)

    def flush(self, next_index: int) -> None:
        if not self.pending and next_index == self.first:
            return
        name = None
        if self.rows:
            name = shard_name(self.config, self.shard)
            write_shard(self.rows, self.config.out / name)
            self.shard += 1
        part = {"first": self.first, "next": next_index, "shard": name, "records": self.pending}
        with atomic_path(self.state / "parts" / f"{self.first:08d}.json") as tmp:
            tmp.write_text(json.dumps(part, ensure_ascii=False) + "\n", encoding="utf-8")
        self.records.extend(self.pending)
        self.first, self.rows, self.pending, self.size = next_index, [], [], 0


def run_ordered(
    tasks: list[tuple[int, str, str]],
    workers: int,
    options: SampleOptions,
    func: Callable = process_file,
    timeout: float | None = DEFAULT_FILE_TIMEOUT,
) -> Iterator[tuple[int, dict]]:
    """Process tasks (index, path, relative) with `func` in a process pool; yield (index, result) in task order.

    Up to `workers * 8` tasks are in flight, so one slow file does not idle the other workers. Each runs under
    `run_limited` (regular files only, `timeout` seconds). When a worker dies, the results that were already
    complete are kept and every other task that was in flight is rerun alone in a fresh process: only the
    file that kills its worker again is marked `crashed` (or `timeout`, when it ran past the hard limit).
    """
    _preload()
    position = 0
    window = max(16, workers * 8)
    while position < len(tasks):
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
        futures: dict[int, object] = {}
        broken = False
        try:
            submitted = position
            while position < len(tasks):
                while submitted < len(tasks) and submitted < position + window:
                    index, path, relative = tasks[submitted]
                    futures[submitted] = pool.submit(run_limited, func, path, relative, options, timeout)
                    submitted += 1
                try:
                    result = futures[position].result()
                except BrokenProcessPool:
                    broken = True
                    break
                except Exception as exc:  # e.g. a result that cannot be sent back: an outcome, not a dead build
                    record = outcome_record(tasks[position][2], "rejected", "error", _short(exc))
                    result = {"record": record, "row": None}
                del futures[position]
                yield tasks[position][0], result
                position += 1
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            for k in range(position, submitted):
                future = futures[k]
                done = future.done() and not future.cancelled() and future.exception() is None
                yield tasks[k][0], future.result() if done else _run_isolated(tasks[k], options, func, timeout)
            position = submitted


def _preload() -> None:
    """Import what workers use (psd-tools' compositor pulls in scipy) before forking: once, not per worker."""
    import PIL.ImageCms  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401
    import psd_tools.composite  # noqa: F401


class FileTimeout(BaseException):
    """Raised by the worker's alarm; a BaseException so that no `except Exception` on the way swallows it."""


def _raise_timeout(_signum, _frame) -> None:
    raise FileTimeout


def run_limited(func: Callable, path: str, relative: str, options: SampleOptions, timeout: float | None) -> dict:
    """Worker side of one task: skip what is not a regular file, run `func` under a SIGALRM time limit.

    A watchdog thread ends the worker (status WATCHDOG_EXIT) if the alarm has not stopped the file a grace
    period later, which happens only when it is stuck inside C code that never returns to Python.
    """
    kind = not_regular(path)
    if kind is not None:
        return {"record": outcome_record(relative, "skipped", "not-regular-file", f"{kind}: not read"), "row": None}
    if timeout is None:
        return func(path, relative, options)
    watchdog = threading.Timer(timeout + _grace(timeout), os._exit, (WATCHDOG_EXIT,))
    watchdog.daemon = True
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    start = time.perf_counter()
    try:
        try:
            watchdog.start()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            return func(path, relative, options)
        finally:  # an alarm that fires in here is caught below like one that fires in `func`
            signal.setitimer(signal.ITIMER_REAL, 0)
            watchdog.cancel()
    except FileTimeout:
        return {"record": _timeout_record(relative, timeout, time.perf_counter() - start), "row": None}
    finally:
        signal.signal(signal.SIGALRM, previous)


def not_regular(path: str) -> str | None:
    """What `path` is when it is not a regular file ("a FIFO", ...), else None (unreadable: left to the reader)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    kinds += [(stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def outcome_record(relative: str, outcome: str, reason: str, detail: str, seconds: float | None = None) -> dict:
    """A manifest record for a file that gave no sample and was not measured (same keys as process_file's)."""
    record = {"path": relative, "sha256": None, "outcome": outcome, "reason": reason, "detail": detail}
    record.update({"psnr": None, "layers_before": None, "layers_after": None, "reference": None})
    record["seconds"] = None if seconds is None else round(seconds, 4)
    return record


def _timeout_record(relative: str, timeout: float, seconds: float) -> dict:
    detail = f"still running after {timeout:g} s (--file-timeout)"
    return outcome_record(relative, "timeout", "file-timeout", detail, seconds)


def _grace(timeout: float) -> float:
    """How long past its limit a file may take to stop before its worker is ended (and then its rerun killed)."""
    return min(60.0, max(2.0, timeout))


def _run_isolated(task: tuple[int, str, str], options: SampleOptions, func: Callable, timeout: float | None) -> dict:
    """Rerun one task alone in a fresh process, killed if it outlives the hard limit; a death is an outcome."""
    import multiprocessing

    _index, path, relative = task
    context = multiprocessing.get_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_isolated_main,
        args=(send, func, path, relative, options),
        kwargs={"timeout": timeout},
        daemon=True,
    )
    start = time.perf_counter()
    process.start()
    send.close()
    limit = None if timeout is None else timeout + 2 * _grace(timeout)
    result, killed = None, False
    try:
        if receive.poll(limit):
            result = receive.recv()
        else:  # past the hard limit and still running
            process.kill()
            killed = True
    except (EOFError, OSError):  # it died before sending anything
        result = None
    finally:
        receive.close()
        process.join()
    if result is not None:
        return result
    if timeout is not None and (killed or process.exitcode == WATCHDOG_EXIT):
        return {"record": _timeout_record(relative, timeout, time.perf_counter() - start), "row": None}
    record = outcome_record(relative, "crashed", "worker-died", "the worker process died while reading this file")
    record["detail"] += " (crash or out of memory)"
    record["sha256"] = _sha_or_none(path)
    return {"record": record, "row": None}


def _isolated_main(send, func: Callable, path: str, relative: str, options: SampleOptions, *, timeout) -> None:
    _worker_init()
    send.send(run_limited(func, path, relative, options, timeout))
    send.close()


def _sha_or_none(path: str) -> str | None:
    from psd_pipeline.sample import sha256_file

    if not_regular(path) is not None:
        return None
    try:
        return sha256_file(path)
    except OSError:
        return None


def _within_row_limit(result: dict) -> dict:
    """A sample too large for one Parquet row (MAX_ROW_BYTES) becomes a rejection, not a failed shard write."""
    row = result["row"]
    if row is None or row_bytes(row) < MAX_ROW_BYTES:
        return result
    detail = f"its PNGs take {row_bytes(row) / 2**30:.1f} GiB; one dataset row holds less than 2 GiB"
    return {"record": {**result["record"], "outcome": "rejected", "reason": "too-large", "detail": detail}, "row": None}


def _short(exc: BaseException, limit: int = 200) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:limit]}"


def _worker_init() -> None:
    warnings.simplefilter("ignore")
    logging.getLogger("psd_tools").setLevel(logging.CRITICAL)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """Linux: a worker dies with the builder (kill -9 included) instead of lingering as an orphan."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):  # not Linux: orphans end when their task queue closes
        return
    if os.getppid() != parent:  # the builder died before the request took effect
        os._exit(1)


def _fingerprint(config: BuildConfig, inputs: list[str]) -> dict:
    options = dataclasses.asdict(config.options)
    listing = hashlib.sha256("\n".join(inputs).encode("utf-8", "surrogateescape")).hexdigest()
    return {
        "options": options,
        "num_shards": config.num_shards,
        "shard_index": config.shard_index,
        "shard_rows": config.shard_rows,
        "shard_bytes": config.shard_bytes,
        "checkpoint_every": config.checkpoint_every,
        "caption_model": config.caption_model,
        "inputs": len(inputs),
        "inputs_sha256": listing,
    }


def _load_state(state: Path, fingerprint: dict, resume: bool) -> tuple[list[dict], int, int]:
    saved = state / "config.json"
    if not saved.exists():
        return [], 0, 0
    if not resume:
        raise InputError(f"{state.parent}: holds a build already (use --resume)")
    try:
        previous = json.loads(saved.read_text(encoding="utf-8"))
    except ValueError:
        previous = None
    if previous != fingerprint:
        raise InputError(f"{state.parent}: built with other options or inputs; --resume needs the same ones")
    records, next_index, shard = [], 0, 0
    for part_path in sorted((state / "parts").glob("*.json")):
        part = json.loads(part_path.read_text(encoding="utf-8"))
        if part["first"] != next_index:
            break  # a later part without its predecessor cannot happen with atomic writes; stop here
        records.extend(part["records"])
        next_index = part["next"]
        shard += part["shard"] is not None
    return records, next_index, shard


def _clear_previous_build(out: Path) -> None:
    """A build (not --resume) over an earlier build's folder starts afresh: remove what that build wrote, only that."""
    if not (out / BUILD_MARKER).is_file():
        return
    try:
        shutil.rmtree(out / STATE_DIR)
        for path in [*out.glob("data-*.parquet"), *(out / name for name in BUILD_FILES)]:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise LayeredError(f"cannot replace the earlier build in {out}: {exc}") from None


def _finish(config: BuildConfig, records: list[dict], report: dict) -> None:
    referenced = {shard_name(config, k) for k in range(report["shards"])}
    for stray in config.out.glob("data-*.parquet"):
        if stray.name not in referenced:
            stray.unlink()
    for leftover in config.out.glob(".*.tmp"):  # temp files of a killed run (atomic writes never finished)
        leftover.unlink(missing_ok=True)
    _write_jsonl(config.out / "manifest.jsonl", records)
    _write_jsonl(config.out / "failures.jsonl", [r for r in records if r["outcome"] != "accepted"])
    with atomic_path(config.out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _progress(config: BuildConfig, total: int, done: int):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="file", desc="psd build", disable=None, dynamic_ncols=True)


def _captioner(config: BuildConfig, log: Callable[[str], None]):
    if config.options.caption != "vlm":
        return None
    from psd_pipeline.caption import load_vlm_captioner

    captioner, why_not = load_vlm_captioner(config.caption_model)
    if captioner is None:
        log(f"captions skipped: {why_not}")
    return captioner
