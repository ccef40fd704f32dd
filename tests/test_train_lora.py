"""LoRA training: the saved weights load with `load_lora_weights`, change the output, and equal the merged model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from test_train_data import write_shards

from training.config import load_config
from training.mmdit import train_mmdit
from training.models import (
    build_pipeline,
    load_scheduler,
    load_text_components,
    load_transformer,
    load_vae,
    save_pipeline,
)

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_i2l.yaml"


def decompose(pipe, image) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    out = pipe(image, prompt="picture number 1", layers=2, num_inference_steps=2, generator=generator, output_type="np")
    return np.stack([np.asarray(x, np.float32) for x in out.images[0]])


def save_base_pipeline(data: Path, folder: Path) -> None:
    """The tiny config's untrained pipeline, saved as the base a LoRA run starts from."""
    config = load_config(CONFIG, {"data.path": str(data)})
    text_encoder, tokenizer, processor = load_text_components(config)
    pipe = build_pipeline(
        transformer=load_transformer(config),
        vae=load_vae(config),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=processor,
        scheduler=load_scheduler(config),
        resolution=32,
    )
    save_pipeline(pipe, folder)


def test_lora_loads_and_equals_merged_weights(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    save_base_pipeline(data, tmp_path / "base")
    config = load_config(
        CONFIG,
        {
            "data.path": str(data),
            "output_dir": str(tmp_path / "out"),
            "model.pretrained": str(tmp_path / "base"),
            "lora.rank": 4,
            "train.max_steps": 3,
            "train.learning_rate": 1e-2,
            "train.report_to": None,
        },
    )
    result = train_mmdit(config)
    assert Path(result["output"], "pytorch_lora_weights.safetensors").is_file()

    from layered.pipeline import LayeredPipeline

    pipe = LayeredPipeline.from_pretrained(tmp_path / "base")
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    plain = decompose(pipe, image)
    pipe.load_lora_weights(result["output"])
    with_lora = decompose(pipe, image)
    assert np.abs(with_lora - plain).max() > 1e-3  # the trained adapter does something
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    merged = decompose(pipe, image)
    np.testing.assert_allclose(merged, with_lora, atol=2e-3)


def test_next_stage_starts_from_base_plus_merged_lora(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    save_base_pipeline(data, tmp_path / "base")
    settings = {"data.path": str(data), "model.pretrained": str(tmp_path / "base"), "train.report_to": None}
    lora_run = {**settings, "output_dir": str(tmp_path / "t2l"), "lora.rank": 4, "train.max_steps": 2}
    lora_run["train.learning_rate"] = 1e-2
    train_mmdit(load_config(CONFIG.with_name("tiny_t2l.yaml"), lora_run))

    # The reference merge, independent of the trainer: the pipeline's own load_lora_weights + fuse_lora.
    from layered.pipeline import LayeredPipeline

    pipe = LayeredPipeline.from_pretrained(tmp_path / "base")
    pipe.load_lora_weights(tmp_path / "t2l" / "lora")
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    expected = pipe.transformer.state_dict()

    next_stage = load_config(CONFIG, {**settings, "model.init_from": str(tmp_path / "t2l")})
    started = load_transformer(next_stage).state_dict()
    base = LayeredPipeline.from_pretrained(tmp_path / "base").transformer.state_dict()
    assert set(started) == set(expected)
    assert any(not torch.equal(base[k], expected[k]) for k in expected)  # the LoRA changed some weights
    for key, value in expected.items():
        torch.testing.assert_close(started[key], value, rtol=1e-5, atol=1e-6)
    assert load_text_components(next_stage)[0] is not None  # text encoder from the base, not the LoRA folder
