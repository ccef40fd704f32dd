"""Packed checkpoints (committed between sessions): no pickle, and a resume from one follows the original run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_data import write_shards

from training import mmdit, portable
from training.checkpoint import latest_checkpoint
from training.config import load_config
from training.vae import train_vae

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def write_config(tmp_path: Path, name: str, data: Path, out: Path, **sections) -> Path:
    raw = yaml.safe_load((CONFIGS / name).read_text())
    raw["data"].update(path=str(data), batch_size=2, held_out=0)
    raw["output_dir"] = str(out)
    raw["train"].update(report_to=None, checkpoints_total_limit=10)
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_vae_resumed_from_a_packed_checkpoint_follows_the_run(tmp_path):
    data = write_shards(tmp_path / "ds", rows=6, layers=[2, 3])
    reference = train_vae(
        load_config(write_config(tmp_path, "tiny_vae.yaml", data, tmp_path / "ref", train={"max_steps": 6}))
    )
    first = write_config(tmp_path, "tiny_vae.yaml", data, tmp_path / "first", train={"max_steps": 3})
    train_vae(load_config(first))
    packed = portable.pack(tmp_path / "first", tmp_path / "packed")

    assert sorted(p.name for p in packed.iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "states.json",
        "training_state.json",
    ]
    _, original = latest_checkpoint(tmp_path / "first")
    weights = load_file(packed / "model.safetensors")
    for key, value in load_file(original / "model.safetensors").items():
        assert torch.equal(weights[key], value), key

    portable.unpack(packed, tmp_path / "second")
    resumed = train_vae(
        load_config(write_config(tmp_path, "tiny_vae.yaml", data, tmp_path / "second", train={"max_steps": 6})),
        resume=True,
    )
    assert resumed["start_step"] == 3
    # Adam moments travel in bfloat16: the following losses agree to about its precision, not bit for bit.
    assert resumed["losses"] == pytest.approx(reference["losses"][3:], rel=2e-2)


def test_mmdit_packed_checkpoint_keeps_the_ema_without_pickle(tmp_path):
    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    ema = {"enabled": True, "decay": 0.9, "update_after_step": 0}
    config = write_config(tmp_path, "tiny_t2l.yaml", data, tmp_path / "run", train={"max_steps": 2}, ema=ema)
    mmdit.train_mmdit(load_config(config))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(portable.LayeredError, match="not a packed checkpoint"):
        portable.pack(tmp_path / "run", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    packed = portable.pack(tmp_path / "run", tmp_path / "packed")
    assert not [p for p in packed.iterdir() if p.suffix in (".pkl", ".bin", ".pt")]

    restored = portable.unpack(packed, tmp_path / "again")
    _, original = latest_checkpoint(tmp_path / "run")
    before = torch.load(original / "custom_checkpoint_0.pkl", weights_only=True)
    after = torch.load(restored / "custom_checkpoint_0.pkl", weights_only=True)
    assert after["optimization_step"] == before["optimization_step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(after["shadow_params"], before["shadow_params"], strict=True))
    resumed = mmdit.train_mmdit(
        load_config(write_config(tmp_path, "tiny_t2l.yaml", data, tmp_path / "again", train={"max_steps": 3}, ema=ema)),
        resume=True,
    )
    assert resumed["start_step"] == 2 and len(resumed["losses"]) == 1


def test_unpack_refuses_what_is_not_a_packed_checkpoint(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(portable.LayeredError, match="not a packed checkpoint"):
        portable.unpack(tmp_path / "notes", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_moments_past_the_size_limit_travel_in_8_bits(tmp_path, monkeypatch):
    data = write_shards(tmp_path / "ds", rows=6, layers=[2, 3])
    first = write_config(tmp_path, "tiny_vae.yaml", data, tmp_path / "first", train={"max_steps": 3})
    train_vae(load_config(first))
    monkeypatch.setattr(portable, "MAX_PACKED_BYTES", 1000)  # the tiny run as if it were a large one
    packed = portable.pack(tmp_path / "first", tmp_path / "packed")
    _, original = latest_checkpoint(tmp_path / "first")
    source = torch.load(original / "optimizer.bin", map_location="cpu", weights_only=True)["state"]
    stored = load_file(packed / "optimizer.safetensors")
    assert {t.dtype for t in stored.values()} <= {torch.int8, torch.uint8, torch.float32, torch.int64}
    portable.unpack(packed, tmp_path / "second")
    _, unpacked = latest_checkpoint(tmp_path / "second")
    restored = torch.load(unpacked / "optimizer.bin", map_location="cpu", weights_only=True)["state"]
    for index, values in source.items():
        m, v = values["exp_avg"], values["exp_avg_sq"]
        m2, v2 = restored[index]["exp_avg"], restored[index]["exp_avg_sq"]
        assert m2.shape == m.shape and v2.shape == v.shape
        assert (m2 - m).abs().max() <= m.abs().max() / 127  # within one step of the block's scale
        assert torch.equal(v2 == 0, v == 0)  # an exact zero stays zero, nothing else becomes one
        positive = v > 0
        if positive.any():  # the log2 step of this run's range is far finer
            assert ((v2[positive] / v[positive]).log2().abs()).max() <= 0.5
    resumed = train_vae(
        load_config(write_config(tmp_path, "tiny_vae.yaml", data, tmp_path / "second", train={"max_steps": 4})),
        resume=True,
    )
    assert resumed["start_step"] == 3 and len(resumed["losses"]) == 1
