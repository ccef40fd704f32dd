"""Model registry: demo folder, Hub cache (offline), local folders, clear errors."""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipeline import make_tiny_pipeline

from layered import models
from layered.errors import InputError
from layered.pipeline import LayeredPipeline


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "model"
    make_tiny_pipeline(seed=7).save_pretrained(folder)
    return folder


def test_demo_missing_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "DEMO_DIR", tmp_path / "nope")
    with pytest.raises(InputError, match="--method classic"):
        models.resolve_model("demo")


def test_demo_and_local_folder_load(monkeypatch, tiny_folder):
    monkeypatch.setattr(models, "DEMO_DIR", tiny_folder)
    assert models.resolve_model("demo") == str(tiny_folder)
    pipe = models.load_pipeline("demo")
    assert isinstance(pipe, LayeredPipeline) and pipe.config.default_resolution == 64
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    direct = make_tiny_pipeline(seed=7)
    kwargs = dict(prompt="p", layers=2, num_inference_steps=2, output_type="pt")
    a = pipe(image, generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    b = direct(image, generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert models.resolve_model(str(tiny_folder)) == str(tiny_folder)


def test_bad_names_and_folders(tmp_path):
    with pytest.raises(InputError, match="not a diffusers pipeline folder"):
        models.resolve_model(tmp_path)
    with pytest.raises(InputError, match="unknown model"):
        models.resolve_model("no-such-model")


def test_hub_model_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as info:
        models.resolve_model("qwen-image-layered")
    message = str(info.value)
    assert "Qwen/Qwen-Image-Layered" in message and "hf download" in message and "\n" not in message


@pytest.mark.usefixtures("tiny_folder")
def test_hub_model_from_cache(monkeypatch, tmp_path):
    # the standard cache layout: models--ORG--NAME/{refs/main, snapshots/<revision>/...}
    repo = tmp_path / "models--Qwen--Qwen-Image-Layered"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    make_tiny_pipeline(seed=7).save_pretrained(snapshot)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.resolve_model("qwen-image-layered") == str(snapshot)
    assert isinstance(models.load_pipeline("qwen-image-layered"), LayeredPipeline)
