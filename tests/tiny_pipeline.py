"""A tiny random `LayeredPipeline` built in code (no download): the real diffusers/transformers classes, tiny configs.

Reused by other test modules (training, web editor): `from tiny_pipeline import make_tiny_pipeline`.
"""

from __future__ import annotations

TINY_Z_DIM = 8  # never 4: the stock pipeline takes any 4-channel input for latents when z_dim == 4
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def make_tiny_tokenizer():
    """A byte-level Qwen2 tokenizer with no merges and Qwen's chat special tokens, built offline."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tokenizer


def make_tiny_text_encoder(tokenizer, hidden_size: int = 16):
    """A Qwen2.5-VL with one text layer and one vision block (tens of thousands of parameters)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text = dict(
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=2 * hidden_size,
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=1,
        hidden_size=16,
        intermediate_size=32,
        num_heads=2,
        out_hidden_size=hidden_size,
        fullatt_block_indexes=[0],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


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

    return FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=8192,
        max_shift=0.9,
        shift=1.0,
        shift_terminal=0.02,
        time_shift_type="exponential",
        use_dynamic_shifting=True,
    )


def tiny_components(seed: int = 0, text_encoder: bool = True, downsample: int = 3) -> dict:
    """The six components of a (stock or layered) Qwen-Image-Layered pipeline, random but seeded."""
    import torch

    torch.manual_seed(seed)
    tokenizer = make_tiny_tokenizer() if text_encoder else None
    return {
        "scheduler": make_tiny_scheduler(),
        "vae": make_tiny_vae(downsample=downsample),
        "text_encoder": make_tiny_text_encoder(tokenizer) if text_encoder else None,
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
