"""--dry-run: parameter counts from the model class on the meta device, tokens per sample, memory table."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.config import load_config
from training.dry_run import dry_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"


def test_tiny_counts_match_a_real_instance_and_peft():
    config = load_config(CONFIGS / "tiny_i2l.yaml", {"lora.rank": 4})
    report = dry_run(config)
    from diffusers import QwenImageTransformer2DModel
    from peft import LoraConfig

    model = QwenImageTransformer2DModel(**config.model.transformer, use_layer3d_rope=True, use_additional_t_cond=True)
    assert report["transformer_params"] == sum(p.numel() for p in model.parameters())
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=config.lora.target_modules))
    assert report["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # 32 px, 16 px per token side -> 2 x 2 tokens per frame; 4 layers + composite + the condition image.
    assert report["tokens_per_sample"] == (4 + 1) * 4 + 4
    with torch.no_grad():
        assert report["memory_gib_per_gpu"]["fsdp"]["8"] <= report["memory_gib_per_gpu"]["ddp"]["8"]


def test_real_config_reports_about_20_4b_parameters(capsys):
    from layered.cli import main

    assert main(["train", "mmdit", str(CONFIGS / "qwen_image_layered_i2l.yaml"), "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 20.3e9 < report["transformer_params"] < 20.5e9
    assert 0 < report["trainable_params"] < report["transformer_params"] / 10  # LoRA by default
    assert report["tokens_per_sample"] == (20 + 1) * 40 * 40 + 40 * 40  # 640 px -> 40 x 40 tokens per frame
    mem = report["memory_gib_per_gpu"]
    assert set(mem) == {"ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"}
    assert mem["deepspeed_zero3"]["64"] < mem["deepspeed_zero2"]["64"] <= mem["ddp"]["64"]
