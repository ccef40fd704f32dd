"""Per-row model inputs: computed on the fly (VAE + text encoder) or read from a safetensors cache.

A row's inputs are `frames` [F, C, h, w] (normalized latents of the composite then the layers, bottom-first),
`rgb` [C, h, w] (the composite flattened over white: the i2l condition image, as `LayeredPipeline`
conditions, and the t2rgba stage's RGB target) and `embeds` [L, D] (caption embeddings).
The cache stores exactly these, so a GPU step with the cache runs neither the VAE nor the text encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from layered.errors import InputError
from layered.pixels import composite_over
from training.data import RowReader, RowRef, config_buckets, index_rows, nearest_bucket, prepare_row, to_model_range
from training.encoding import encode_captions, encode_images

CACHE_VERSION = 1


def flatten(pixels: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The image over an opaque `background`, as opaque RGBA: what `LayeredPipeline` conditions on by default."""
    rgb = composite_over(pixels, background)
    return np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)


class OnlineSource:
    """Decode, resize and encode rows on demand (frozen VAE and text encoder)."""

    def __init__(self, refs: list[RowRef], buckets, max_layers: int, *, vae=None, text_pipe=None, device="cpu") -> None:
        self.refs, self.buckets, self.max_layers = refs, buckets, max_layers
        self.vae, self.text_pipe, self.device = vae, text_pipe, device
        self.reader = RowReader()
        self._empty = None

    def pixels(self, index: int) -> dict:
        ref = self.refs[index]
        size = nearest_bucket(ref.width, ref.height, self.buckets)
        return prepare_row(self.reader.read(ref), size, self.max_layers)

    def get(self, index: int) -> dict[str, torch.Tensor]:
        row = self.pixels(index)
        opaque = flatten(row["composite"])
        images = np.stack([to_model_range(px) for px in [row["composite"], *row["layers"], opaque]])
        latents = encode_images(self.vae, torch.from_numpy(images)).cpu()
        embeds = encode_captions(self.text_pipe, [row["caption"]], self.device)[0]
        return {"frames": latents[:-1], "rgb": latents[-1], "embeds": embeds}

    def empty_embeds(self) -> torch.Tensor:
        if self._empty is None:
            self._empty = encode_captions(self.text_pipe, [""], self.device)[0]
        return self._empty


class CacheSource:
    """Rows read back from a cache folder written by `build_cache`."""

    def __init__(self, folder: str | Path, refs: list[RowRef], settings: dict | None = None) -> None:
        from safetensors import safe_open

        folder = Path(folder)
        index_path = folder / "cache.json"
        if not index_path.is_file():
            raise InputError(f"{folder} is not a training cache (no cache.json)")
        index = json.loads(index_path.read_text())
        if index.get("version") != CACHE_VERSION:
            raise InputError(f"{folder}: cache version {index.get('version')} is not {CACHE_VERSION}; rebuild it")
        stored = index.get("settings", {})
        for key, value in (settings or {}).items():
            if key in stored and json.loads(json.dumps(value)) != stored[key]:
                raise InputError(f"{folder}: cache built with {key}={stored[key]}, the config has {value}; rebuild it")
        self.where = {row_id: shard for row_id, shard in index["rows"].items()}
        missing = [ref.id for ref in refs if ref.id not in self.where]
        if missing:
            raise InputError(f"{folder}: cache lacks {len(missing)} dataset rows (first: {missing[0]}); rebuild it")
        self.refs, self.folder, self._open = refs, folder, safe_open
        self._handles: dict[str, object] = {}
        with safe_open(folder / "empty.safetensors", framework="pt") as handle:
            self._empty = handle.get_tensor("embeds")

    def get(self, index: int) -> dict[str, torch.Tensor]:
        row_id = self.refs[index].id
        shard = self.where[row_id]
        if shard not in self._handles:
            self._handles[shard] = self._open(self.folder / shard, framework="pt")
        handle = self._handles[shard]
        return {name: handle.get_tensor(f"{row_id}/{name}") for name in ("frames", "rgb", "embeds")}

    def empty_embeds(self) -> torch.Tensor:
        return self._empty


def build_cache(source: OnlineSource, folder: str | Path, rows_per_shard: int = 256, settings: dict | None = None):
    """Encode every row of `source` once and write safetensors shards plus cache.json (atomically)."""
    from safetensors.torch import save_file

    from layered.fileio import atomic_dir

    rows: dict[str, str] = {}
    with atomic_dir(folder) as tmp:
        tensors: dict[str, torch.Tensor] = {}
        shard_index = 0

        def flush() -> None:
            nonlocal tensors, shard_index
            if tensors:
                save_file(tensors, str(tmp / f"cache-{shard_index:05d}.safetensors"))
                tensors, shard_index = {}, shard_index + 1

        for index, ref in enumerate(source.refs):
            if ref.id in rows:
                raise InputError(f"dataset has the row id {ref.id!r} twice; ids must be unique for the cache")
            for name, value in source.get(index).items():
                tensors[f"{ref.id}/{name}"] = value.contiguous()
            rows[ref.id] = f"cache-{shard_index:05d}.safetensors"
            if len(tensors) >= 3 * rows_per_shard:
                flush()
        flush()
        save_file({"embeds": source.empty_embeds().contiguous()}, str(tmp / "empty.safetensors"))
        index = {"version": CACHE_VERSION, "settings": settings or {}, "rows": rows}
        (tmp / "cache.json").write_text(json.dumps(index, indent=1))
    return Path(folder)


def write_cache(config, folder: str | Path) -> Path:
    """Build the frozen encoders of `config` and cache every dataset row (`layered train ... --build-cache`)."""
    from training.encoding import text_pipeline
    from training.models import load_text_components, load_vae

    if not config.data.path:
        raise InputError("no training data: set data.path in the config or pass --data DIR")
    refs = index_rows(config.data.path)
    buckets = config_buckets(config)
    vae = load_vae(config).requires_grad_(False)
    text_encoder, tokenizer, _ = load_text_components(config)
    source = OnlineSource(
        refs, buckets, config.data.max_layers, vae=vae, text_pipe=text_pipeline(text_encoder, tokenizer)
    )
    return build_cache(source, folder, settings=cache_settings(config))


def cache_settings(config) -> dict:
    """What a cache depends on besides the rows: checked when a run reads it."""
    return {"buckets": [list(b) for b in config_buckets(config)], "max_layers": config.data.max_layers}
