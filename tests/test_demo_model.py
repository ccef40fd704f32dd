"""The shipped demo model (layered/assets/demo): it loads offline, really decomposes held-out designs, and
the stock diffusers pipeline reads the same folder.

Held-out designs come from `layered psd synth`'s generator with seed 1000; the model trained on seed 0. The
floors sit below the figures measured on these designs (see layered/assets/demo/README.md), far above what a
broken model (random weights, a collapsed VAE, swapped layer order) scores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from layered.decompose import Settings, decomposer
from layered.metrics import evaluate, mean_scores
from layered.models import DEMO_DIR, load_pipeline
from layered.similarity import psnr
from psd_pipeline.synth import make_design

DESIGNS = range(8)
STEPS = 50  # the CLI's default
PSNR_FLOOR_DB = 15.0  # measured 17.8 dB (mean of these 8 designs, 50 steps, seed 0)
IOU_FLOOR = 0.30  # measured 0.390; random weights score ~0.25, a collapsed VAE ~10 dB
WEIGHT_LIMIT_BYTES = 30 * 1024 * 1024


@pytest.fixture(scope="module")
def pipe():
    pipe = load_pipeline("demo")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_folder_is_small_fp16_safetensors_with_a_model_card():
    weights = list(DEMO_DIR.rglob("*.safetensors"))
    assert weights and not list(DEMO_DIR.rglob("*.bin")) and not list(DEMO_DIR.rglob("*.pt*"))
    assert sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file()) <= WEIGHT_LIMIT_BYTES
    from safetensors import safe_open

    for path in weights:
        with safe_open(path, "pt") as handle:
            dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
        assert dtypes == {"F16"}, (path.name, dtypes)
    card = (DEMO_DIR / "README.md").read_text()
    assert "held-out" in card and "classic" in card
    index = json.loads((DEMO_DIR / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_layered", "LayeredPipeline"]  # diffusers' custom-pipeline reference


def test_decomposes_held_out_designs(pipe):
    scores, psnrs = [], []
    for index in DESIGNS:
        truth = make_design(seed=1000, index=index, size=pipe.config.default_resolution, style="flat")
        composite = truth.composite()
        out = decomposer(Settings(method="model", layers=len(truth), steps=STEPS), pipeline=pipe)(composite)
        assert len(out) == len(truth) and out.size == truth.size
        psnrs.append(psnr(out.composite()[..., :3] / 255, composite[..., :3] / 255))
        scores.append(evaluate(out, truth, max_merge=0))
    iou = mean_scores(scores)[0]["soft_iou"]
    assert np.mean(psnrs) >= PSNR_FLOOR_DB, psnrs
    assert iou >= IOU_FLOOR, iou


def test_stock_diffusers_pipeline_loads_the_same_model(pipe):
    """Stock QwenImageLayeredPipeline reads the folder (no processor: pass an explicit prompt) with the same weights.

    That the two pipelines then give the same layers for the same seed is tested on shared weights in
    tests/test_pipeline.py (`test_batch_one_equals_stock_pipeline`); the stock one only runs at 640 or 1024 px.
    """
    from diffusers import QwenImageLayeredPipeline

    # the folder names its custom pipeline (LayeredPipeline, a subclass): stock's loader asks for trust_remote_code
    stock = QwenImageLayeredPipeline.from_pretrained(
        DEMO_DIR, processor=None, dtype=torch.float32, trust_remote_code=True
    )
    assert isinstance(stock, QwenImageLayeredPipeline)
    for name in ("vae", "transformer", "text_encoder"):
        ours_state, stock_state = getattr(pipe, name).state_dict(), getattr(stock, name).state_dict()
        assert ours_state.keys() == stock_state.keys()
        for key, value in ours_state.items():
            torch.testing.assert_close(stock_state[key].float(), value.float(), rtol=0, atol=0, msg=f"{name}.{key}")
    assert stock.scheduler.config == pipe.scheduler.config
    assert stock.vae_scale_factor == pipe.vae_scale_factor == 4
