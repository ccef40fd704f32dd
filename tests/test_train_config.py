"""Training configs: every value is checked against its field's annotation, and a wrong type names its key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layered.errors import InputError
from training.config import Config, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "training" / "configs").glob("*.yaml"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"pretrained": 3}}, "model.pretrained must be a string, got 3"),  # default None
        ({"lora": {"alpha": "wide"}}, "lora.alpha must be a number, got 'wide'"),  # default None
        ({"data": {"synth": [1, 2]}}, "data.synth must be a mapping, got [1, 2]"),  # default None
        ({"train": {"report_to": False}}, "train.report_to must be a string, got False"),  # str | None
        ({"train": {"max_steps": 10.5}}, "train.max_steps must be an integer, got 10.5"),
        ({"train": {"max_steps": "10"}}, "train.max_steps must be an integer, got '10'"),
        ({"seed": True}, "seed must be an integer, got True"),  # a bool is no integer
        ({"train": {"gradient_checkpointing": 1}}, "train.gradient_checkpointing must be true or false, got 1"),
        ({"data": {"bucket_ratios": [1.0, "tall"]}}, "data.bucket_ratios[1] must be a number, got 'tall'"),
        ({"data": {"bucket_ratios": 1.0}}, "data.bucket_ratios must be a list of numbers, got 1.0"),
        ({"lora": {"target_modules": ["to_q", 7]}}, "lora.target_modules[1] must be a string, got 7"),
        ({"train": {"max_steps": None}}, "train.max_steps must be an integer, got None"),
        ({"train": 5}, "train must be a mapping, got int"),
    ],
)
def test_a_wrong_type_is_refused_naming_the_key(raw, message):
    with pytest.raises(InputError) as caught:
        config_from_dict(raw)
    assert str(caught.value) == f"config: {message}"


def test_values_of_the_right_type_are_kept_and_an_int_is_a_float_where_a_float_is_asked():
    config = config_from_dict(
        {
            "train": {"learning_rate": 1, "max_steps": 12, "report_to": None, "gradient_checkpointing": True},
            "lora": {"alpha": 16},
            "data": {"bucket_ratios": [1, 2.0], "path": None, "synth": {"photos": None}},
            "model": {"pretrained": "some/folder"},
            "eval": None,  # an empty section: its defaults
        }
    )
    assert config.train.learning_rate == 1.0 and type(config.train.learning_rate) is float
    assert config.lora.alpha == 16.0 and type(config.lora.alpha) is float
    assert [type(r) for r in config.data.bucket_ratios] == [float, float] and config.data.bucket_ratios == [1.0, 2.0]
    assert config.train.max_steps == 12 and config.train.report_to is None and config.train.gradient_checkpointing
    assert config.data.synth == {"photos": None} and config.model.pretrained == "some/folder"
    assert config.eval == Config().eval


def test_a_float_written_without_a_dot_is_read_as_a_number():
    raw = yaml.safe_load("train:\n  learning_rate: 1e-5\n")
    assert raw["train"]["learning_rate"] == "1e-5"  # YAML 1.1: a string, which the reader parses
    assert config_from_dict(raw).train.learning_rate == 1e-5


def test_overrides_do_not_change_the_callers_dict_and_fill_an_empty_section():
    raw = {"train": None, "data": {"bucket_ratios": [1.0]}}
    config = config_from_dict(raw, {"train.max_steps": 3, "data.path": "x"})
    assert config.train.max_steps == 3 and config.data.path == "x"
    assert raw == {"train": None, "data": {"bucket_ratios": [1.0]}}
    config.data.bucket_ratios.append(2.0)
    assert raw["data"]["bucket_ratios"] == [1.0]
    with pytest.raises(InputError, match="config: train must be a mapping, got 5"):
        config_from_dict({"train": 5}, {"train.max_steps": 3})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_survives_its_checkpoint_round_trip(path):
    config = load_config(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in raw.items():  # the values written in the file are the values read
        if not isinstance(values, dict):
            assert getattr(config, section) == values
            continue
        for key, value in values.items():
            got = getattr(getattr(config, section), key)
            assert got == (float(value) if isinstance(value, str) and isinstance(got, float) else value), key
    assert config_from_dict(config.to_dict()) == config  # training_state.json stores to_dict()
    assert dataclasses.asdict(config) == config.to_dict()


def test_the_cli_prints_one_line_and_exits_2_on_a_wrong_type(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_steps: 10.5\n")
    out = subprocess.run(
        [sys.executable, "-m", "layered", "train", "peel", str(bad), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "layered train: error: config: train.max_steps must be an integer, got 10.5"
    ]
