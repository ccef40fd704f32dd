"""The shipped demo model (layered/assets/demo): it loads offline, really decomposes held-out designs, and
the stock diffusers pipeline reads the same folder.

Held-out designs come from `layered psd synth`'s rich (v2) generator with seed 1000; the model trained on seed 0.
The floors sit below the figures measured on these designs (see layered/assets/demo/README.md) and above what the
same pipeline with random transformer weights scores (checked here too).
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
from psd_pipeline.synth_rich import draw_rich

DESIGNS = range(1, 9)
SIZE = 128  # twice the model's working size: refinement returns the layers at the input's size
STEPS = 50  # the CLI's default
# Measured (mean of these 8 designs, 50 steps, seed 0): raw layers 17.0 dB and IoU 0.223, refined IoU 0.227.
# Random transformer weights: 7.5 dB and IoU 0.090 raw, IoU 0.146 refined.
RAW_PSNR_FLOOR_DB = 14.0
RAW_IOU_FLOOR = 0.18
REFINED_IOU_FLOOR = 0.19
WEIGHT_LIMIT_BYTES = 30 * 1024 * 1024


@pytest.fixture(scope="module")
def pipe():
    pipe = load_pipeline("demo")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def held_out_scores(pipe, refine: bool) -> tuple[float, float]:
    """Mean recomposition PSNR (dB, RGB) and soft IoU at merge 0 on the held-out designs, N = the truth's count."""
    scores, psnrs = [], []
    for index in DESIGNS:
        truth = draw_rich(1000, index, SIZE).stack
        composite = truth.composite()
        settings = Settings(method="model", layers=len(truth), steps=STEPS, refine=refine)
        out = decomposer(settings, pipeline=pipe)(composite)
        assert len(out) == len(truth) and out.size == truth.size
        psnrs.append(psnr(out.composite()[..., :3] / 255, composite[..., :3] / 255))
        scores.append(evaluate(out, truth, max_merge=0))
    return float(np.mean(psnrs)), mean_scores(scores)[0]["soft_iou"]


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
    raw_psnr, raw_iou = held_out_scores(pipe, refine=False)
    refined_psnr, refined_iou = held_out_scores(pipe, refine=True)
    assert raw_psnr >= RAW_PSNR_FLOOR_DB and raw_iou >= RAW_IOU_FLOOR, (raw_psnr, raw_iou)
    assert refined_iou >= REFINED_IOU_FLOOR, refined_iou
    assert refined_psnr >= 40.0  # refinement: the layers add up to the input


def test_random_weights_fail_the_floors():
    random = load_pipeline("demo")
    random.set_progress_bar_config(disable=True)
    torch.manual_seed(0)
    for module in random.transformer.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    raw_psnr, raw_iou = held_out_scores(random, refine=False)
    assert raw_psnr < RAW_PSNR_FLOOR_DB and raw_iou < RAW_IOU_FLOOR, (raw_psnr, raw_iou)
    assert held_out_scores(random, refine=True)[1] < REFINED_IOU_FLOOR


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
