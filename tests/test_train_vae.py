"""RGBA-VAE training pieces: compositing over solid colours, PSNR/SSIM/alpha-IoU evaluation, a short run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_data import write_shards

from training.config import load_config
from training.data import to_model_range
from training.vae import evaluate_vae, over_solid, train_vae

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_over_solid_matches_pil(rng):
    pixels = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    color = (30, 200, 90)
    reference = Image.alpha_composite(Image.new("RGBA", (8, 8), (*color, 255)), Image.fromarray(pixels))
    ours = over_solid(torch.from_numpy(to_model_range(pixels))[None], torch.tensor([color]) / 255.0)
    ours = (ours[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(ours - np.asarray(reference)[..., :3]).max() <= 1


def test_short_run_saves_a_vae_whose_eval_matches(tmp_path):
    data = write_shards(tmp_path / "ds", rows=3, layers=2)
    config = load_config(
        CONFIGS / "tiny_vae.yaml",
        {
            "data.path": str(data),
            "output_dir": str(tmp_path / "out"),
            "train.max_steps": 3,
            "train.log_every": 1,
            "train.report_to": None,
        },
    )
    result = train_vae(config)
    assert len(result["losses"]) == 3 and all(math.isfinite(x) for x in result["losses"])
    logged = [json.loads(line) for line in (tmp_path / "out" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2, 3]
    assert [row["loss"] for row in logged] == pytest.approx(result["losses"])
    from diffusers import AutoencoderKLQwenImage

    vae = AutoencoderKLQwenImage.from_pretrained(result["output"]).eval()
    assert vae.config.input_channels == 4
    opaque = np.zeros((32, 32, 4), np.uint8)
    opaque[..., :3], opaque[..., 3] = 120, 255
    scores = evaluate_vae(vae, [opaque])
    with torch.no_grad():
        x = torch.from_numpy(to_model_range(opaque))[None, :, None]
        recon = vae.decode(vae.encode(x).latent_dist.mode(), return_dict=False)[0][0, :, 0]
    alpha = ((recon[3].clamp(-1, 1) + 1) * 127.5).round().numpy() / 255
    assert scores["alpha_iou"] == pytest.approx(alpha.mean(), abs=1e-6)  # soft IoU against alpha 1 = mean alpha
    assert math.isfinite(scores["psnr"]) and -1.0 <= scores["ssim"] <= 1.0


def test_saved_vae_normalises_its_latents(tmp_path):
    """latents_mean/std are the posterior-mode statistics of the training rows: normalised latents are ~N(0, 1)."""
    from diffusers import AutoencoderKLQwenImage

    from training.cache import flatten
    from training.data import RowReader, index_rows
    from training.encoding import encode_images

    data = write_shards(tmp_path / "ds", rows=4, layers=2)
    config = load_config(
        CONFIGS / "tiny_vae.yaml",
        {"data.path": str(data), "output_dir": str(tmp_path / "out"), "train.max_steps": 2, "train.report_to": None},
    )
    vae = AutoencoderKLQwenImage.from_pretrained(train_vae(config)["output"]).eval()
    assert vae.config.latents_std != [1.0] * vae.config.z_dim
    reader = RowReader()
    images = []
    for ref in index_rows(data):
        row = reader.read(ref)
        images += [flatten(row["composite"]), *row["layers"]]
    z = encode_images(vae, torch.from_numpy(np.stack([to_model_range(px) for px in images])))
    per_channel = z.transpose(0, 1).reshape(vae.config.z_dim, -1)
    np.testing.assert_allclose(per_channel.mean(dim=1).numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(per_channel.std(dim=1).numpy(), 1.0, atol=1e-3)


def test_vae_overfits_a_fixed_batch(tmp_path):
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    settings = {
        "data.path": str(data),
        "output_dir": str(tmp_path / "out"),
        "train.max_steps": 80,
        "train.overfit_batch": True,
        "data.batch_size": 1,
        "train.checkpoint_every": 1000,
        "train.report_to": None,
    }
    losses = train_vae(load_config(CONFIGS / "tiny_vae.yaml", settings))["losses"]
    assert losses[0] / min(losses[-5:]) >= 10, losses[::10]


def test_starts_from_an_rgb_vae_by_channel_surgery(tmp_path):
    from diffusers import AutoencoderKLQwenImage

    torch.manual_seed(0)
    settings = dict(base_dim=8, z_dim=8, dim_mult=[1, 2, 4], num_res_blocks=1, temperal_downsample=[False, True])
    AutoencoderKLQwenImage(**settings, input_channels=3).save_pretrained(tmp_path / "rgb")
    rgb = AutoencoderKLQwenImage.from_pretrained(tmp_path / "rgb")
    data = write_shards(tmp_path / "ds", rows=2, layers=2)
    overrides = {
        "data.path": str(data),
        "output_dir": str(tmp_path / "out"),
        "model.rgb_vae": str(tmp_path / "rgb"),
        "model.vae_config": None,
        "train.max_steps": 0,
        "train.report_to": None,
    }
    vae = AutoencoderKLQwenImage.from_pretrained(train_vae(load_config(CONFIGS / "tiny_vae.yaml", overrides))["output"])
    assert vae.config.input_channels == 4
    conv_in = vae.encoder.conv_in.weight
    torch.testing.assert_close(conv_in[:, :3], rgb.encoder.conv_in.weight)
    assert conv_in[:, 3].abs().max() == 0  # alpha enters with zero weight: RGB images encode as before


def test_vae_resume_continues_with_the_same_steps(tmp_path):
    data = write_shards(tmp_path / "ds", rows=3, layers=2)

    def config(name: str, steps: int):
        settings = {"data.path": str(data), "output_dir": str(tmp_path / name), "train.max_steps": steps}
        return load_config(
            CONFIGS / "tiny_vae.yaml", {**settings, "train.checkpoint_every": 2, "train.report_to": None}
        )

    full = train_vae(config("full", 4))["losses"]
    assert train_vae(config("split", 2))["losses"] == pytest.approx(full[:2], rel=1e-5)
    resumed = train_vae(config("split", 4), resume=True)
    assert resumed["start_step"] == 2
    assert resumed["losses"] == pytest.approx(full[2:], rel=1e-5)


@pytest.mark.parametrize("reconstruction", ["l1", "mse"])
def test_vae_loss_terms_match_their_formulas(reconstruction):
    """With the posterior mode and no KL, the loss is the chosen distance on RGBA plus on the solid composite."""
    from diffusers import AutoencoderKLQwenImage

    from training.vae import vae_loss

    config = load_config(
        CONFIGS / "tiny_vae.yaml",
        {"vae_loss.reconstruction": reconstruction, "vae_loss.sample_posterior": False, "vae_loss.kl": 0.0},
    )
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(**config.model.vae_config).eval()
    images, colors = torch.rand(2, 4, 32, 32) * 2 - 1, torch.rand(2, 3)
    with torch.no_grad():
        recon = vae.decode(vae.encode(images.unsqueeze(2)).latent_dist.mode(), return_dict=False)[0][:, :, 0]
        power = 2 if reconstruction == "mse" else 1
        expected = (recon - images).abs().pow(power).mean() + (
            over_solid(recon, colors) - over_solid(images, colors)
        ).abs().pow(power).mean()
        torch.manual_seed(1)
        first = vae_loss(vae, images, colors, config)
        torch.manual_seed(2)
        second = vae_loss(vae, images, colors, config)
    assert first.item() == pytest.approx(expected.item(), rel=1e-5)
    assert first.item() == second.item()  # the mode: no sampling noise


def test_unknown_reconstruction_loss_is_refused():
    from layered.errors import InputError

    with pytest.raises(InputError, match="vae_loss.reconstruction"):
        load_config(CONFIGS / "tiny_vae.yaml", {"vae_loss.reconstruction": "l3"})


def test_thumbnail_anchor_is_the_mse_to_the_block_mean(rng):
    """Channels 0-3 of the latents against the input's 4 x 4 block means (numpy), the other channels ignored."""
    from training.vae import thumbnail_anchor

    images = torch.from_numpy(rng.uniform(-1, 1, (2, 4, 32, 32)).astype(np.float32))
    blocks = images.numpy().reshape(2, 4, 8, 4, 8, 4).mean(axis=(3, 5))
    latents = torch.from_numpy(rng.normal(size=(2, 8, 8, 8)).astype(np.float32))
    expected = ((latents.numpy()[:, :4] - blocks) ** 2).mean()
    assert thumbnail_anchor(latents, images).item() == pytest.approx(expected, rel=1e-5)
    latents[:, :4] = torch.from_numpy(blocks)
    assert thumbnail_anchor(latents, images).item() == pytest.approx(0.0, abs=1e-10)


class _OpaqueCopy(torch.nn.Module):
    """A 'VAE' that returns its input with alpha forced to 1: composites come back exact, layers lose their alpha."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return type("Out", (), {"latent_dist": type("Dist", (), {"mode": lambda _self: x})()})()

    def decode(self, z, **_options):  # return_dict=False: a tuple, as the callers ask
        return (torch.cat([z[:, :3], torch.ones_like(z[:, 3:])], dim=1),)


def test_held_out_eval_scores_layers_apart_from_composites(rng):
    from types import SimpleNamespace

    from training.vae import evaluate_held_out

    opaque = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    opaque[..., 3] = 255
    layer = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    held = SimpleNamespace(refs=[0], pixels=lambda _index: {"composite": opaque, "layers": [opaque, layer]})
    scores = evaluate_held_out(_OpaqueCopy(), held)
    assert scores["psnr"] == math.inf and scores["alpha_iou"] == pytest.approx(1.0)
    # soft IoU of an all-opaque prediction against alpha a: sum(min(a, 1)) / sum(max(a, 1)) = mean(a)
    expected_layer_iou = (1.0 + layer[..., 3].mean() / 255) / 2
    assert scores["layers_alpha_iou"] == pytest.approx(expected_layer_iou, rel=1e-6)


def test_foreground_weights_give_a_small_layer_as_much_weight_as_its_canvas():
    from training.vae import foreground_weights

    images = torch.full((2, 4, 16, 16), -1.0)  # two fully transparent layers...
    images[0, :, 7:9, 7:9] = 0.5  # ...the first with a 2 x 2 element: grown by 2 px it covers 6 x 6 pixels
    images[1, 3] = 1.0  # the second opaque everywhere
    weights = foreground_weights(images, focus=1.0)
    grown = np.zeros((16, 16), bool)
    grown[5:11, 5:11] = True
    share = grown.mean()
    np.testing.assert_allclose(weights[0, 0].numpy(), np.where(grown, 1 + 1 / share, 1.0), rtol=1e-6)
    # the extra weight sums to the canvas size in both samples: each sample's visible part counts as its canvas
    assert (weights[0] - 1).sum().item() == pytest.approx(256.0) and (weights[1] - 1).sum().item() == pytest.approx(
        256.0
    )
    empty = torch.full((1, 4, 8, 8), -1.0)
    assert torch.equal(foreground_weights(empty, focus=3.0), torch.ones(1, 1, 8, 8))  # nothing visible: no extra
