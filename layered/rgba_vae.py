"""RGBA-VAE surgery: a 4-channel `AutoencoderKLQwenImage` from an RGB one, with the paper's initialisation.

Encoder input weights for alpha are 0 and the decoder's alpha output has weight 0 and bias 1, so at init an
opaque image encodes exactly as with the RGB VAE and decodes opaque (alpha = 1 in [-1, 1] is alpha 255).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLQwenImage


@torch.no_grad()
def rgba_vae_from_rgb(vae: AutoencoderKLQwenImage) -> AutoencoderKLQwenImage:
    """A new 4-channel VAE (same config otherwise, same dtype and device) initialised from the 3-channel `vae`."""
    if vae.config.input_channels != 3:
        raise ValueError(f"expected an RGB VAE (input_channels=3), got input_channels={vae.config.input_channels}")
    config = dict(vae.config)
    config["input_channels"] = 4
    rgba = AutoencoderKLQwenImage.from_config(config)
    parameter = next(vae.parameters())
    rgba.to(parameter.device)
    if parameter.dtype != torch.float32:
        rgba.to(parameter.dtype)
    source = vae.state_dict()
    target = rgba.state_dict()
    for name, tensor in source.items():
        if target[name].shape == tensor.shape:
            target[name].copy_(tensor)
    conv_in = target["encoder.conv_in.weight"]  # out x in x t x h x w
    conv_in.zero_()
    conv_in[:, :3] = source["encoder.conv_in.weight"]
    conv_out, bias = target["decoder.conv_out.weight"], target["decoder.conv_out.bias"]  # 4 x in x t x h x w
    conv_out.zero_()
    conv_out[:3] = source["decoder.conv_out.weight"]
    bias[:3] = source["decoder.conv_out.bias"]
    bias[3] = 1.0
    rgba.load_state_dict(target)
    return rgba.eval() if not vae.training else rgba
