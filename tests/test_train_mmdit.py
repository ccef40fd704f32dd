"""VLD-MMDiT training on tiny models built in code: overfitting per stage; the trained folder loads in
LayeredPipeline and decomposes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train_data import write_shards

from training.config import load_config
from training.mmdit import train_mmdit

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ds"), rows=4, layers=3)


def tiny(stage: str, data: Path, out: Path, **overrides):
    settings = {"data.path": str(data), "output_dir": str(out), "train.report_to": None}
    settings.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(CONFIGS / f"tiny_{stage}.yaml", settings)


@pytest.mark.parametrize("stage", ["t2rgba", "t2l", "i2l"])
def test_overfits_a_fixed_batch(stage, dataset, tmp_path):
    config = tiny(
        stage,
        dataset,
        tmp_path,
        train__max_steps=60,
        train__learning_rate=5e-3,
        train__overfit_batch=True,
        train__checkpoint_every=1000,
        data__batch_size=2,
        data__caption_dropout=0.0,
    )
    result = train_mmdit(config)
    losses = result["losses"]
    assert len(losses) == 60
    assert losses[0] / min(losses[-5:]) >= 10, losses[::10]
    assert Path(result["output"], "model_index.json").is_file()
    if stage == "i2l":
        from layered.pipeline import LayeredPipeline

        pipe = LayeredPipeline.from_pretrained(result["output"])
        image = np.zeros((32, 32, 3), np.uint8)
        image[:, :16] = (200, 40, 40)
        from PIL import Image

        out = pipe(Image.fromarray(image), prompt="picture number 0", layers=2, num_inference_steps=2)
        assert len(out.images[0]) == 2 and out.images[0][0].size == (32, 32)
        assert len(out.stacks[0]) <= 2


def test_gradient_checkpointing_does_not_change_the_losses(dataset, tmp_path):
    runs = []
    for checkpointing in (False, True):
        config = tiny(
            "i2l",
            dataset,
            tmp_path / str(checkpointing),
            train__max_steps=3,
            train__gradient_checkpointing=checkpointing,
            data__batch_size=2,
        )
        runs.append(train_mmdit(config)["losses"])
    assert runs[1] == pytest.approx(runs[0], rel=1e-5)


def test_cosine_schedule_follows_its_formula(dataset, tmp_path):
    """train.lr_scheduler: the logged lr warms up linearly, then follows half a cosine to 0 at max_steps."""
    import json
    import math

    config = tiny(
        "t2rgba",
        dataset,
        tmp_path,
        train__max_steps=6,
        train__lr_warmup_steps=2,
        train__lr_scheduler="cosine",
        train__learning_rate=1e-3,
        train__log_every=1,
        data__batch_size=2,
    )
    train_mmdit(config)
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    logged = {row["step"]: row["lr"] for row in map(json.loads, lines) if "lr" in row}

    def expected(step: int) -> float:  # the lr used for the optimizer step after `step` updates
        if step < 2:
            return 1e-3 * step / 2
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 4))

    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    assert [logged[s] for s in sorted(logged)] == pytest.approx([expected(s) for s in range(1, 7)], abs=1e-12)


def test_frame_zero_learns_to_copy_the_condition(tmp_path):
    """Text dropped and pure noise in (s = 1): frame 0 (the composite) can only come from the condition tokens.

    The tiny VAE is random, so its latents are first normalised with the dataset's statistics (the job of
    latents_mean / latents_std in the real VAE). The bar: beat the per-position dataset mean, the best guess
    without the condition image, and be far better than with another row's image. 800 steps (~80 s on 2
    idle cores): the tiny model learns the copy slowly (it routes by Layer3D position); after 300 steps it still
    loses to the dataset mean.
    """
    import dataclasses

    import torch
    from diffusers import AutoencoderKLQwenImage

    from training.cache import OnlineSource
    from training.data import index_rows, make_buckets, to_model_range
    from training.encoding import encode_images, pack, text_pipeline
    from training.mmdit import assemble, model_inputs
    from training.models import load_text_components, load_transformer, load_vae

    data = write_shards(tmp_path / "ds", rows=8, layers=2, seed=5)
    refs, buckets = index_rows(data), make_buckets(32, [1.0], 16)
    base = tiny("i2l", data, tmp_path / "unused")
    vae = load_vae(base)
    pixels = OnlineSource(refs, buckets, 4)
    images = torch.stack([torch.from_numpy(to_model_range(pixels.pixels(i)["composite"])) for i in range(len(refs))])
    latents = encode_images(vae, images)
    stats = {"latents_mean": latents.mean(dim=(0, 2, 3)).tolist(), "latents_std": latents.std(dim=(0, 2, 3)).tolist()}
    normalised = AutoencoderKLQwenImage.from_config({**dict(vae.config), **stats})
    normalised.load_state_dict(vae.state_dict())
    normalised.save_pretrained(tmp_path / "vae")

    config = tiny(
        "i2l",
        data,
        tmp_path / "out",
        model__vae=str(tmp_path / "vae"),
        train__max_steps=800,
        train__learning_rate=3e-3,
        train__checkpoint_every=1000,
        data__batch_size=4,
        data__caption_dropout=1.0,
    )
    config.model.init_from = train_mmdit(config)["output"]
    transformer = load_transformer(config).eval()
    text_encoder, tokenizer, _ = load_text_components(config)
    source = OnlineSource(refs, buckets, 4, vae=load_vae(config), text_pipe=text_pipeline(text_encoder, tokenizer))
    batch = assemble(source, list(enumerate(range(len(refs)))), step=10**6, config=config)

    def frame0_error(b) -> float:
        sigmas = torch.ones(len(refs))
        hidden, shapes, _ = model_inputs(b, sigmas)
        with torch.no_grad():
            v = transformer(
                hidden_states=hidden,
                encoder_hidden_states=b.embeds,
                encoder_hidden_states_mask=b.mask,
                timestep=sigmas,
                img_shapes=shapes,
                additional_t_cond=b.is_rgb,
                return_dict=False,
            )[0]
        tokens = shapes[0][0][1] * shapes[0][0][2]
        x0_hat = pack(b.noise[:, :1]) - v[:, :tokens]  # x_1 = noise, x0 = x_s - s * v
        return (x0_hat - pack(b.frames[:, :1])).pow(2).mean().item()

    frame0 = pack(batch.frames[:, :1])
    without_image = (frame0 - frame0.mean(dim=0, keepdim=True)).pow(2).mean().item()
    right = frame0_error(batch)
    wrong = frame0_error(dataclasses.replace(batch, cond=batch.cond.roll(1, dims=0)))  # another row's image
    # Measured: 0.41 with the right image, 0.46 for the best guess without it, 1.32 with another row's image.
    assert right < 0.95 * without_image, (right, without_image)
    assert right < 0.5 * wrong, (right, wrong)


def test_bf16_mixed_precision_follows_fp32(dataset, tmp_path):
    """bf16 autocast (then fp32 again in the same process) keeps the first losses within bf16 rounding."""
    runs = {}
    for precision in ("bf16", "no"):
        config = tiny("i2l", dataset, tmp_path / precision, train__max_steps=2, train__mixed_precision=precision)
        runs[precision] = train_mmdit(config)["losses"]
    assert runs["bf16"] == pytest.approx(runs["no"], rel=0.03)
    assert runs["bf16"] != runs["no"]  # autocast did run in bf16
