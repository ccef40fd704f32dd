"""Frozen encoders, used exactly as `QwenImageLayeredPipeline` uses them at inference.

Images: RGBA in [-1, 1] -> VAE posterior mode -> (z - latents_mean) / latents_std, one frame per image.
Text: the pipeline's own `encode_prompt` (prompt template, dropped prefix, padding mask).
Packing: the pipeline's `_pack_latents` (2x2 patches, frames one after the other).
"""

from __future__ import annotations

import torch

MAX_SEQUENCE_LENGTH = 1024  # the pipeline's default max_sequence_length


def latent_stats(vae, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=dtype).view(1, z_dim, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=device, dtype=dtype).view(1, z_dim, 1, 1)
    return mean, std


@torch.no_grad()
def encode_images(vae, pixels: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """[N, 4, H, W] in [-1, 1] -> normalized latents [N, z_dim, H/s, W/s] (posterior mode, as the pipeline)."""
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_layered import retrieve_latents

    param = next(vae.parameters())
    outs = []
    for start in range(0, pixels.shape[0], chunk):
        x = pixels[start : start + chunk].to(param.device, param.dtype).unsqueeze(2)
        outs.append(retrieve_latents(vae.encode(x), sample_mode="argmax")[:, :, 0])
    latents = torch.cat(outs).float()
    mean, std = latent_stats(vae, latents.device, latents.dtype)
    return (latents - mean) / std


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Normalized latents [N, z_dim, h, w] -> RGBA [N, 4, H, W] in [-1, 1] (the pipeline's inverse)."""
    param = next(vae.parameters())
    mean, std = latent_stats(vae, latents.device, latents.dtype)
    z = (latents * std + mean).to(param.device, param.dtype).unsqueeze(2)
    return vae.decode(z, return_dict=False)[0][:, :, 0].float()


def text_pipeline(text_encoder, tokenizer):
    """A QwenImageLayeredPipeline holding only the text components, for its `encode_prompt`."""
    from diffusers import QwenImageLayeredPipeline

    return QwenImageLayeredPipeline(
        scheduler=None, vae=None, text_encoder=text_encoder, tokenizer=tokenizer, processor=None, transformer=None
    )


@torch.no_grad()
def encode_captions(pipe, captions: list[str], device) -> list[torch.Tensor]:
    """One [L_i, D] float32 tensor per caption: the pipeline's prompt embeddings without the padding."""
    embeds, mask = pipe.encode_prompt(prompt=list(captions), device=device, max_sequence_length=MAX_SEQUENCE_LENGTH)
    lengths = [embeds.shape[1]] * len(captions) if mask is None else mask.sum(dim=1).tolist()
    return [e[: int(n)].float().cpu() for e, n in zip(embeds, lengths, strict=True)]


def pad_embeddings(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [L_i, D] tensors into [B, L, D] with a [B, L] mask (1 = token), as `encode_prompt` pads."""
    length = max(1, max(r.shape[0] for r in rows))
    embeds = rows[0].new_zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        embeds[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
    return embeds, mask


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, F, C, h, w] -> [B, F*(h/2)*(w/2), 4C] with the pipeline's own packing."""
    from diffusers import QwenImageLayeredPipeline

    b, f, c, h, w = latents.shape
    return QwenImageLayeredPipeline._pack_latents(latents, b, c, h, w, f)


def img_shapes(batch: int, frames: int, h: int, w: int, cond_hw: tuple[int, int]) -> list[list[tuple[int, int, int]]]:
    """RoPE shapes: `frames` noisy frames (Layer3D index 0..frames-1) then the condition (index -1)."""
    return [[*[(1, h // 2, w // 2)] * frames, (1, *cond_hw)]] * batch
