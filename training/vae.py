"""RGBA-VAE training and evaluation.

Start: `model.rgb_vae` (an RGB AutoencoderKLQwenImage folder) through `layered.rgba_vae.rgba_vae_from_rgb`,
else `model.vae` (continue an RGBA-VAE), else `model.vae_config` (tiny, from scratch). Samples: opaque RGB
images (composites flattened over white, alpha 1) and single RGBA layers. Losses: L1 on RGBA, L1 of the RGB
composited over a random solid colour, LPIPS on that composite (only when the optional `lpips` package is
installed), KL. Evaluation (AIM-500 protocol): PSNR/SSIM of reconstructions composited over solid colours,
alpha soft IoU.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from layered.errors import LayeredError
from layered.pixels import composite_over
from layered.similarity import psnr, ssim
from training import loop
from training.config import Config
from training.data import index_rows, row_seed, split_rows, to_model_range

EVAL_BACKGROUNDS = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0), (0, 0, 255))


def load_start_vae(config: Config):
    """The VAE to train: RGB -> RGBA surgery, a previous RGBA-VAE, or a from-scratch tiny one."""
    from diffusers import AutoencoderKLQwenImage

    from training.models import component_dir, load_vae

    if config.model.rgb_vae:
        from layered.rgba_vae import rgba_vae_from_rgb

        rgb = AutoencoderKLQwenImage.from_pretrained(component_dir(config.model.rgb_vae, "vae"))
        return rgba_vae_from_rgb(rgb)
    return load_vae(config)


def over_solid(pixels: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """RGBA in [-1, 1] [B, 4, H, W] composited over solid colours [B, 3] in [0, 1] -> RGB in [0, 1].

    The loss's differentiable, batched form (a colour per sample, unrounded); scores on uint8 pixels use
    `layered.pixels.composite_over`.
    """
    rgb, alpha = (pixels[:, :3] + 1) / 2, ((pixels[:, 3:] + 1) / 2).clamp(0, 1)
    return alpha * rgb + (1 - alpha) * color.view(-1, 3, 1, 1)


def vae_samples(source, rows: list[tuple[int, int]], step: int, config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [B, 4, H, W] in [-1, 1], background colours [B, 3]) for one process at `step`."""
    from training.cache import flatten

    images, colors = [], []
    for position, index in rows:
        g = torch.Generator().manual_seed(row_seed(config.seed, step, position))
        row = source.pixels(index)
        if torch.rand(1, generator=g).item() < config.vae_loss.rgb_fraction:
            pixels = flatten(row["composite"])
        else:
            pixels = row["layers"][int(torch.randint(0, len(row["layers"]), (1,), generator=g))]
        images.append(torch.from_numpy(to_model_range(pixels)))
        colors.append(torch.rand(3, generator=g))
    return torch.stack(images), torch.stack(colors)


def vae_loss(vae, images: torch.Tensor, colors: torch.Tensor, config: Config, perceptual=None) -> torch.Tensor:
    weights = config.vae_loss
    posterior = vae.encode(images.unsqueeze(2)).latent_dist
    latents = posterior.sample() if weights.sample_posterior else posterior.mode()
    recon = vae.decode(latents, return_dict=False)[0][:, :, 0].float()
    pixel_weights = foreground_weights(images, weights.foreground) if weights.foreground > 0 else 1.0
    distance = (
        (lambda a, b: ((a - b).square() * pixel_weights).mean())
        if weights.reconstruction == "mse"
        else (lambda a, b: ((a - b).abs() * pixel_weights).mean())
    )
    loss = weights.l1 * distance(recon, images)
    recon_rgb, target_rgb = over_solid(recon, colors), over_solid(images, colors)
    loss = loss + weights.composite_l1 * distance(recon_rgb, target_rgb)
    if perceptual is not None and weights.perceptual > 0:
        loss = loss + weights.perceptual * perceptual(recon_rgb * 2 - 1, target_rgb * 2 - 1).mean()
    if weights.thumbnail > 0:
        loss = loss + weights.thumbnail * thumbnail_anchor(posterior.mode()[:, :, 0], images)
    return loss + weights.kl * posterior.kl().mean()


def foreground_weights(images: torch.Tensor, focus: float, reach: int = 2) -> torch.Tensor:
    """Per-pixel loss weights [B, 1, H, W]: 1, plus `focus` / (the sample's share of it) on its non-transparent pixels
    grown by `reach` pixels, so a 40-pixel layer's own pixels and edges weigh as much as its whole canvas.
    """
    visible = (images[:, 3:4] > -1.0).float()  # alpha in [-1, 1]: -1 is fully transparent
    grown = torch.nn.functional.max_pool2d(visible, 2 * reach + 1, stride=1, padding=reach)
    share = grown.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1.0 / grown[0].numel())
    return 1.0 + focus * grown / share


def thumbnail_anchor(latents: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """MSE between latent channels 0-3 and the RGBA input average-pooled to the latent grid.

    From scratch the encoder's latents start ~0.04 wide and the decoder barely reads them, so the two halves sit
    on a mean-image plateau (DEMO_PLAN.md 3a); a thumbnail target gives the latent path a signal from step 1.
    """
    factor = images.shape[-1] // latents.shape[-1]
    thumb = torch.nn.functional.avg_pool2d(images, factor)
    return (latents[:, : thumb.shape[1]] - thumb).square().mean()


def _lpips(config: Config, device):
    if config.vae_loss.perceptual <= 0:
        return None, "perceptual loss off (vae_loss.perceptual = 0)"
    try:
        import lpips
    except ImportError:
        return None, "perceptual loss skipped: the optional `lpips` package is not installed"
    return lpips.LPIPS(net="vgg").to(device).eval().requires_grad_(False), "perceptual loss: LPIPS (vgg)"


@torch.no_grad()
@torch.no_grad()
def reconstruct(vae, pixels: np.ndarray) -> np.ndarray:
    """One RGBA uint8 image through the VAE (posterior mode), back as RGBA uint8."""
    param = next(vae.parameters())
    x = torch.from_numpy(to_model_range(pixels))[None, :, None].to(param.device, param.dtype)
    recon = vae.decode(vae.encode(x).latent_dist.mode(), return_dict=False)[0][0, :, 0].float().cpu()
    return ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def evaluate_vae(vae, images: list[np.ndarray]) -> dict[str, float]:
    """Reconstruct RGBA uint8 images (posterior mode); PSNR/SSIM over solid colours and alpha soft IoU (means)."""
    from layered.metrics import soft_iou

    psnrs, ssims, ious = [], [], []
    for pixels in images:
        out = reconstruct(vae, pixels)
        ious.append(soft_iou(out, pixels))
        for color in EVAL_BACKGROUNDS:
            ref = composite_over(pixels, color, dtype=np.float64)
            rec = composite_over(out, color, dtype=np.float64)
            psnrs.append(psnr(rec, ref))
            ssims.append(ssim(rec, ref))
    finite = [p for p in psnrs if math.isfinite(p)]
    return {
        "psnr": float(np.mean(finite)) if finite else math.inf,
        "ssim": float(np.mean(ssims)),
        "alpha_iou": float(np.mean(ious)),
    }


def evaluate_held_out(vae, held, max_layers: int = 256) -> dict[str, float]:
    """Held-out rows (an `OnlineSource`, at the training size) scored on their composites and on their layers.

    The layers carry the alpha that the decomposer's masks are built from, so they get their own `layers_*` scores.
    """
    rows = [held.pixels(index) for index in range(len(held.refs))]
    scores = evaluate_vae(vae, [row["composite"] for row in rows])
    layers = [layer for row in rows for layer in row["layers"]][:max_layers]
    if layers:
        scores.update({f"layers_{k}": v for k, v in evaluate_vae(vae, layers).items()})
    return scores


@torch.no_grad()
def with_latent_stats(vae, source, rows: int):
    """A copy of `vae` whose `latents_mean`/`latents_std` are the per-channel statistics of its posterior mode.

    Every MMDiT stage assumes unit-variance latents; measured on composites and layers of the first `rows` rows.
    """
    from diffusers import AutoencoderKLQwenImage

    from training.cache import flatten
    from training.encoding import encode_images

    z_dim = vae.config.z_dim
    raw = AutoencoderKLQwenImage.from_config(
        {**dict(vae.config), "latents_mean": [0.0] * z_dim, "latents_std": [1.0] * z_dim}
    )
    raw.load_state_dict(vae.state_dict())
    raw.to(next(vae.parameters()).device).eval()
    latents = []
    for index in range(min(rows, len(source.refs))):
        row = source.pixels(index)
        images = [flatten(row["composite"]), *row["layers"]]
        pixels = torch.from_numpy(np.stack([to_model_range(px) for px in images]))
        latents.append(encode_images(raw, pixels).transpose(0, 1).reshape(z_dim, -1))
    if not latents:
        return vae
    flat = torch.cat(latents, dim=1).double()
    mean, std = flat.mean(dim=1), flat.std(dim=1).clamp_min(1e-6)
    raw.register_to_config(latents_mean=[float(v) for v in mean], latents_std=[float(v) for v in std])
    return raw


def train_vae(config: Config, resume: bool = False) -> dict:
    """Train the RGBA-VAE; checkpoints as the MMDiT run; output OUTPUT/vae (a folder `--vae` accepts)."""
    from training.cache import OnlineSource

    out = Path(config.output_dir)
    accelerator = loop.make_accelerator(config)
    if accelerator.distributed_type == "FSDP":
        # FSDP2 gathers weights in forward(); the VAE is trained through encode()/decode(), which bypass it.
        raise LayeredError("train vae: FSDP does not apply to the VAE; use the DDP (or DeepSpeed ZeRO-2) config")
    if not config.data.path:
        raise LayeredError("no training data: set data.path in the config or pass --data DIR")
    rows = split_rows(index_rows(config.data.path), config, accelerator.num_processes)
    source = OnlineSource(rows.train, rows.buckets, config.data.max_layers, device=accelerator.device)
    held_source = OnlineSource(rows.held, rows.buckets, config.data.max_layers, device=accelerator.device)

    vae = load_start_vae(config)
    if config.train.gradient_checkpointing:
        vae.enable_gradient_checkpointing()
    perceptual, note = _lpips(config, accelerator.device)
    accelerator.print(note)
    vae, optimizer = accelerator.prepare(vae, loop.adamw(vae.parameters(), config))
    start_step = loop.begin(
        accelerator, config, resume=resume, project="layered-vae", tracker_config={"lr": config.train.learning_rate}
    )
    vae.train()
    model = accelerator.unwrap_model(vae)  # trained through encode()/decode(), not the wrapper's forward()

    def train_step(step: int) -> loop.Step:
        at = 0 if config.train.overfit_batch else step
        images, colors = vae_samples(source, rows.plan.process_rows(at, accelerator.process_index), at, config)
        images, colors = images.to(accelerator.device), colors.to(accelerator.device)
        with accelerator.accumulate(vae):
            torch.manual_seed(row_seed(config.seed, at, 10**6 + accelerator.process_index))  # posterior sample
            loss = vae_loss(model, images, colors, config, perceptual)
            mean = loop.mean_loss(accelerator, loss, output_dir=out, step=step)
            loop.backward_and_step(
                accelerator,
                loss,
                params=vae.parameters(),
                optimizer=optimizer,
                max_grad_norm=config.train.max_grad_norm,
            )
        return loop.Step(loss=mean, samples=images.shape[0] * accelerator.num_processes)

    def evaluate(_step: int) -> dict[str, float]:
        scores = evaluate_held_out(model.eval(), held_source)
        model.train()
        return {f"eval/{k}": v for k, v in scores.items()}

    losses = loop.run(
        accelerator, config, start_step=start_step, train_step=train_step, evaluate=evaluate if rows.held else None
    )
    saved = loop.save_and_end(accelerator, vae, lambda whole: save_vae(whole, source, config))
    return {"losses": losses, "start_step": start_step, "step": start_step + len(losses), "output": None, **saved}


def save_vae(vae, source, config: Config) -> dict:
    """OUTPUT/vae with the latent statistics of the training rows; what `train_vae` reports about it."""
    from layered.fileio import atomic_dir

    out = Path(config.output_dir)
    final = with_latent_stats(vae.eval(), source, config.data.stats_rows)
    with atomic_dir(out / "vae") as tmp:
        final.save_pretrained(tmp, safe_serialization=True)
    return {
        "output": str(out / "vae"),
        "latents_mean": final.config.latents_mean,
        "latents_std": final.config.latents_std,
    }
