"""A tiny random `LayeredPipeline` built in code (no download): the real diffusers/transformers classes, tiny configs.

Reused by other test modules (training, web editor): `from tiny_pipeline import make_tiny_pipeline`.
"""

from __future__ import annotations

TINY_Z_DIM = 8  # never 4: the stock pipeline takes any 4-channel input for latents when z_dim == 4


def make_tiny_text_encoder_and_tokenizer(hidden_size: int = 16):
    """The training package's tiny Qwen2.5-VL and offline byte-level tokenizer (one builder for both uses)."""
    from training.models import tiny_text_encoder

    text_encoder, tokenizer = tiny_text_encoder({"hidden_size": hidden_size, "num_hidden_layers": 1})
    return text_encoder.eval(), tokenizer


def make_tiny_vae(z_dim: int = TINY_Z_DIM, downsample: int = 3, base_dim: int = 4, input_channels: int = 4):
    """An `AutoencoderKLQwenImage` with 2**downsample spatial compression (3 = the real model's 8x)."""
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=[1] * (downsample + 1),
        num_res_blocks=1,
        temperal_downsample=[False] + [True] * (downsample - 1),
        input_channels=input_channels,
        latents_mean=[0.1 * i for i in range(z_dim)],
        latents_std=[1.0 + 0.1 * i for i in range(z_dim)],
    ).eval()


def make_tiny_transformer(z_dim: int = TINY_Z_DIM, joint_attention_dim: int = 16):
    """A 2-block VLD-MMDiT (Layer3D RoPE + the RGB/RGBA timestep condition), about 90k parameters."""
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=4 * z_dim,
        out_channels=z_dim,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=joint_attention_dim,
        axes_dims_rope=(4, 6, 6),
        use_layer3d_rope=True,
        use_additional_t_cond=True,
    ).eval()


def make_tiny_scheduler():
    """The flow-matching scheduler with Qwen-Image's configuration (dynamic shifting, exponential)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from training.models import SCHEDULER_CONFIG

    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)


def tiny_components(seed: int = 0, text_encoder: bool = True, downsample: int = 3) -> dict:
    """The six components of a (stock or layered) Qwen-Image-Layered pipeline, random but seeded."""
    import torch

    torch.manual_seed(seed)
    encoder, tokenizer = make_tiny_text_encoder_and_tokenizer() if text_encoder else (None, None)
    return {
        "scheduler": make_tiny_scheduler(),
        "vae": make_tiny_vae(downsample=downsample),
        "text_encoder": encoder,
        "tokenizer": tokenizer,
        "processor": None,  # Qwen2VLProcessor needs torchvision's video processor: captioning stays optional
        "transformer": make_tiny_transformer(),
    }


def make_tiny_pipeline(seed: int = 0, text_encoder: bool = True, downsample: int = 3, default_resolution: int = 64):
    """A tiny random `LayeredPipeline` (CPU, float32) that runs at `default_resolution` px by default."""
    from layered.pipeline import LayeredPipeline

    components = tiny_components(seed, text_encoder, downsample)
    pipe = LayeredPipeline(**components, default_resolution=default_resolution)
    pipe.set_progress_bar_config(disable=True)
    return pipe
