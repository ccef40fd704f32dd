"""RGBA-VAE surgery: opaque images encode as with the RGB VAE and decode to the same RGB with alpha 1."""

from __future__ import annotations

import pytest
import torch
from tiny_pipeline import make_tiny_vae

from layered.rgba_vae import rgba_vae_from_rgb


@pytest.fixture(scope="module")
def vaes():
    torch.manual_seed(3)
    rgb = make_tiny_vae(input_channels=3)
    return rgb, rgba_vae_from_rgb(rgb)


def test_config_and_weights(vaes):
    rgb, rgba = vaes
    assert rgba.config.input_channels == 4 and rgb.config.input_channels == 3
    assert rgba.config.z_dim == rgb.config.z_dim
    w = rgba.encoder.conv_in.weight
    assert torch.equal(w[:, :3], rgb.encoder.conv_in.weight) and not w[:, 3].any()
    out = rgba.decoder.conv_out
    assert not out.weight[3].any() and out.bias[3].item() == 1.0
    assert torch.equal(out.weight[:3], rgb.decoder.conv_out.weight)


@torch.no_grad()
def test_opaque_latents_equal_rgb_latents(vaes):
    rgb, rgba = vaes
    x = torch.rand(2, 3, 1, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    opaque = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # alpha 1 in [-1, 1]
    old, new = rgb.encode(x).latent_dist, rgba.encode(opaque).latent_dist
    torch.testing.assert_close(new.mean, old.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(new.logvar, old.logvar, rtol=0, atol=1e-6)


@torch.no_grad()
def test_decode_is_old_rgb_with_alpha_one(vaes):
    rgb, rgba = vaes
    z = torch.randn(2, rgb.config.z_dim, 1, 4, 6, generator=torch.Generator().manual_seed(1))
    old, new = rgb.decode(z).sample, rgba.decode(z).sample
    assert new.shape[1] == 4
    torch.testing.assert_close(new[:, :3], old, rtol=0, atol=1e-6)
    assert torch.all(new[:, 3] == 1.0)


def test_refuses_rgba_input(vaes):
    with pytest.raises(ValueError, match="input_channels"):
        rgba_vae_from_rgb(vaes[1])
