"""The real Qwen-Image-Layered on paper: parameters (meta device, no weights), FLOPs per denoising step at the
640 and 1024 buckets for N = 3..8 layers with and without CFG, the H100 compute floor for 50 steps, and the GPU
memory each offload / fp8 mode needs.

    python benchmarks/estimate_real.py [--text-tokens 256] [--tflops 790]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

GIB = 2**30
TRANSFORMER = dict(
    patch_size=2,
    in_channels=64,
    out_channels=16,
    num_layers=60,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=3584,
    axes_dims_rope=(16, 56, 56),
    use_layer3d_rope=True,
    use_additional_t_cond=True,
)
# Qwen2.5-VL-7B-Instruct (the text encoder / captioner)
TEXT = dict(
    hidden_size=3584,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    intermediate_size=18944,
    vocab_size=152064,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
)
VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584)


def build_meta():
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        transformer = QwenImageTransformer2DModel(**TRANSFORMER).to(torch.bfloat16)
        vae = AutoencoderKLQwenImage(input_channels=4)
        config = Qwen2_5_VLConfig(text_config=TEXT, vision_config=VISION, tie_word_embeddings=False)
        text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    return transformer, vae, text_encoder


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def step_flops(transformer, resolution: int, layers: int, text_tokens: int) -> int:
    """FLOPs of one transformer forward (batch 1) for N layers at a square `resolution` bucket."""
    grid = resolution // 16  # 8x VAE, 2x2 patches
    frames = layers + 1  # composite + N layers (noisy), then the condition image
    tokens = (frames + 1) * grid * grid
    hidden = torch.empty(1, tokens, 64, device="meta", dtype=torch.bfloat16)
    text = torch.empty(1, text_tokens, 3584, device="meta", dtype=torch.bfloat16)
    shapes = [[(1, grid, grid)] * frames + [(1, grid, grid)]]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        transformer(
            hidden_states=hidden,
            encoder_hidden_states=text,
            timestep=torch.zeros(1, device="meta", dtype=torch.bfloat16),
            img_shapes=shapes,
            additional_t_cond=torch.zeros(1, device="meta", dtype=torch.long),
            return_dict=False,
        )
    total = counter.get_total_flops()
    counted = counter.get_flop_counts().get("Global", {})
    if not any("scaled_dot_product" in str(op) for op in counted):  # the dispatcher hid SDPA: add it (QK^T + AV)
        inner = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
        total += 4 * (tokens + text_tokens) ** 2 * inner * TRANSFORMER["num_layers"]
    return total


def block_params(transformer) -> int:
    return max(count(block) for block in transformer.transformer_blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-tokens", type=int, default=256, help="caption length in tokens (default 256)")
    parser.add_argument("--tflops", type=float, default=790.0, help="measured bf16 rate of the GPU (H100: ~790)")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    transformer, vae, text_encoder = build_meta()
    n_tr, n_vae, n_te = count(transformer), count(vae), count(text_encoder)
    print("parameters (meta device, no weights)")
    for name, n in (("transformer (VLD-MMDiT)", n_tr), ("RGBA-VAE", n_vae), ("text encoder Qwen2.5-VL-7B", n_te)):
        print(f"  {name:28s} {n / 1e9:7.3f} B   bf16 {n * 2 / GIB:6.1f} GiB")
    print(f"  {'total':28s} {(n_tr + n_vae + n_te) / 1e9:7.3f} B   bf16 {(n_tr + n_vae + n_te) * 2 / GIB:6.1f} GiB")

    print(f"\ntransformer FLOPs per denoising step (batch 1, {args.text_tokens} text tokens, square image)")
    print(f"  and compute floor for {args.steps} steps at {args.tflops:.0f} TFLOP/s")
    print("  res   N   tokens   TFLOP/step  TFLOP/step CFG   floor s   floor s CFG")
    for resolution in (640, 1024):
        for layers in range(3, 9):
            flops = step_flops(transformer, resolution, layers, args.text_tokens)
            tokens = (layers + 2) * (resolution // 16) ** 2
            floor = flops * args.steps / (args.tflops * 1e12)
            print(
                f"  {resolution:4d} {layers:3d} {tokens:8d} {flops / 1e12:12.1f} {2 * flops / 1e12:14.1f}"
                f" {floor:9.1f} {2 * floor:12.1f}"
            )

    # GPU memory: weights resident on the GPU per mode, plus transformer activations for 640, N = 4
    d = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
    tokens = (4 + 2) * 40 * 40 + args.text_tokens
    activations = tokens * d * 2 * 12  # bf16 residual streams, q/k/v/out and the 4x MLP of one block (rough)
    blk = block_params(transformer)
    rest = n_tr - blk * len(transformer.transformer_blocks)
    largest_leaf = max(p.numel() for p in text_encoder.parameters())
    modes = [
        ("none (all on GPU, bf16)", (n_tr + n_vae + n_te) * 2),
        ("model offload", max(n_tr, n_te, n_vae) * 2),
        ("model offload + fp8 transformer", max(n_tr, n_te * 2, n_vae * 2)),
        ("group offload (1 block/group, stream)", max(rest + 2 * blk, n_vae) * 2),
        ("sequential offload", max(largest_leaf, blk // 6) * 2),
    ]
    print(
        f"\nGPU memory per mode (weights resident + ~{activations / GIB:.1f} GiB transformer activations at 640, N=4)"
    )
    for name, weights in modes:
        print(f"  {name:40s} weights {weights / GIB:6.1f} GiB   total ~{(weights + activations) / GIB:6.1f} GiB")
    print("  (the VAE decode adds its own activations per layer frame: use VAE slicing/tiling on small cards)")


if __name__ == "__main__":
    main()
