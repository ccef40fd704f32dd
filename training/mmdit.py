"""VLD-MMDiT training (stages t2rgba, t2l, i2l): rectified flow in diffusers' convention through accelerate.

Sequence per sample, as `LayeredPipeline` builds it at inference: the noisy frames (Layer3D index 0..F-1:
composite then layers bottom-first; t2rgba: one frame) followed by the condition tokens (index -1). i2l:
the clean latent of the composite flattened over white (what the pipeline feeds); the text-only stages:
one zero token (a blank condition), so the noisy frames keep the same RoPE indices in every stage.
`additional_t_cond` is the pipeline's `is_rgb` flag: 0 for RGBA targets (all of t2l/i2l, what the
pipeline passes), 1 for opaque RGB targets (the t2rgba stage's text->RGB half).
x_s = (1 - s) x0 + s noise, target noise - x0, s logit-normal (diffusers' training utilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from layered.errors import LayeredError
from training import loop
from training.config import Config
from training.data import config_buckets, index_rows, row_seed, split_rows
from training.encoding import img_shapes, pack, pad_embeddings


@dataclass
class Batch:
    frames: torch.Tensor  # [B, F, C, h, w] clean latents
    noise: torch.Tensor  # [B, F, C, h, w]
    u: torch.Tensor  # [B] density samples in (0, 1)
    cond: torch.Tensor | None  # [B, C, h, w] clean condition latent (i2l) or None
    embeds: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L]
    is_rgb: torch.Tensor  # [B] long


def assemble(source, rows: list[tuple[int, int]], step: int, config: Config) -> Batch:
    """Build one process's batch; every random choice comes from (seed, step, position in the global batch)."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    train = config.train
    frames, noises, us, conds, embeds, flags = [], [], [], [], [], []
    for position, index in rows:
        g = torch.Generator().manual_seed(row_seed(config.seed, step, position))
        item = source.get(index)
        drop = torch.rand(1, generator=g).item() < config.data.caption_dropout
        embeds.append(source.empty_embeds() if drop else item["embeds"])
        if config.stage == "t2rgba":  # half text->RGB (opaque composite), half text->RGBA (one layer)
            use_rgb = torch.rand(1, generator=g).item() < 0.5
            layer = int(torch.randint(1, item["frames"].shape[0], (1,), generator=g))
            frames.append((item["rgb"] if use_rgb else item["frames"][layer])[None])
            flags.append(int(use_rgb))
        else:
            frames.append(item["frames"])
            flags.append(0)
        if config.stage == "i2l":
            conds.append(item["rgb"])
        us.append(
            compute_density_for_timestep_sampling(
                train.weighting_scheme, 1, train.logit_mean, train.logit_std, train.mode_scale, generator=g
            )
        )
        noises.append(torch.randn(frames[-1].shape, generator=g))
    emb, mask = pad_embeddings(embeds)
    return Batch(
        frames=torch.stack(frames),
        noise=torch.stack(noises),
        u=torch.cat(us),
        cond=torch.stack(conds) if conds else None,
        embeds=emb,
        mask=mask,
        is_rgb=torch.tensor(flags, dtype=torch.long),
    )


def model_inputs(batch: Batch, sigmas: torch.Tensor) -> tuple[torch.Tensor, list, torch.Tensor]:
    """(hidden_states, img_shapes, packed target) for noise level `sigmas` [B]."""
    b, f, c, h, w = batch.frames.shape
    s = sigmas.view(b, 1, 1, 1, 1).to(batch.frames.dtype)
    noisy = pack((1.0 - s) * batch.frames + s * batch.noise)
    if batch.cond is not None:
        cond, cond_hw = pack(batch.cond[:, None]), (h // 2, w // 2)
    else:
        cond, cond_hw = noisy.new_zeros(b, 1, noisy.shape[2]), (1, 1)
    target = pack(batch.noise - batch.frames)
    return torch.cat([noisy, cond], dim=1), img_shapes(b, f, h, w, cond_hw), target


def compute_loss(transformer, batch: Batch, train_scheduler, config: Config, device) -> torch.Tensor:
    """Flow-matching loss on the noisy frames only (the condition tokens' outputs are dropped)."""
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    n = train_scheduler.config.num_train_timesteps
    indices = (batch.u * n).long().clamp(0, n - 1)
    sigmas = train_scheduler.sigmas[indices].float()
    timesteps = train_scheduler.timesteps[indices].float()
    hidden, shapes, target = model_inputs(batch, sigmas)
    pred = transformer(
        hidden_states=hidden.to(device),
        encoder_hidden_states=batch.embeds.to(device),
        encoder_hidden_states_mask=batch.mask.to(device),
        timestep=(timesteps / 1000).to(device),
        img_shapes=shapes,
        additional_t_cond=batch.is_rgb.to(device),
        return_dict=False,
    )[0]
    pred = pred[:, : target.shape[1]].float()
    weighting = compute_loss_weighting_for_sd3(config.train.weighting_scheme, sigmas).view(-1, 1, 1).to(device)
    per_sample = (weighting * (pred - target.to(device)) ** 2).flatten(1).mean(dim=1)
    return per_sample.mean()


def freeze_unreached(transformer) -> None:
    """Freeze the last block's text-stream output layers: their output is dropped, so they never get a gradient.

    AdamW skips them either way (same training), but a sharded optimizer checkpoint (FSDP) then holds a state for
    every trainable weight, which resuming requires.
    """
    last = transformer.transformer_blocks[-1]
    for module in (last.attn.to_add_out, last.txt_mlp):
        module.requires_grad_(False)


def train_mmdit(config: Config, resume: bool = False, source=None) -> dict:
    """Train the VLD-MMDiT; write checkpoints and the output (pipeline folder or LoRA weights)."""
    from accelerate.utils import DistributedDataParallelKwargs
    from diffusers import FlowMatchEulerDiscreteScheduler

    from training.models import load_scheduler, load_transformer

    out = Path(config.output_dir)
    # find_unused_parameters: the last block's text-stream outputs never reach the loss.
    accelerator = loop.make_accelerator(config, [DistributedDataParallelKwargs(find_unused_parameters=True)])
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.train.mixed_precision, torch.float32)
    if config.data.path is None and source is None:
        raise LayeredError("no training data: set data.path in the config or pass --data DIR")
    rows = split_rows(
        index_rows(config.data.path) if source is None else source.refs, config, accelerator.num_processes
    )

    transformer = load_transformer(config)
    components = frozen_components(config, accelerator)
    if source is None:
        source = training_source(config, rows, components, accelerator.device, weight_dtype)
    trainer = prepare_trainer(transformer, config, accelerator, weight_dtype)
    train_scheduler = FlowMatchEulerDiscreteScheduler.from_config(load_scheduler(config).config)
    start_step = loop.begin(
        accelerator,
        config,
        resume=resume,
        project="layered-mmdit",
        tracker_config={"stage": config.stage, "lr": config.train.learning_rate},
    )
    trainer.transformer.train()

    def train_step(step: int) -> loop.Step:
        accum, step_loss = config.train.gradient_accumulation_steps, 0.0
        for k in range(accum):
            micro = step * accum + k
            at = 0 if config.train.overfit_batch else micro  # overfit_batch: the same rows, noise and s every step
            batch = assemble(source, rows.plan.process_rows(at, accelerator.process_index), at, config)
            accelerator.step = micro  # keeps accumulate()'s sync points right after a resume
            with accelerator.accumulate(trainer.transformer):
                loss = compute_loss(trainer.transformer, batch, train_scheduler, config, accelerator.device)
                step_loss += loop.mean_loss(accelerator, loss, output_dir=out, step=step) / accum
                loop.backward_and_step(
                    accelerator,
                    loss,
                    params=trainer.params,
                    optimizer=trainer.optimizer,
                    max_grad_norm=config.train.max_grad_norm,
                    lr_scheduler=trainer.lr_scheduler,
                )
        if trainer.ema is not None:
            trainer.ema.step(trainer.params)
        samples = config.data.batch_size * accelerator.num_processes * accum
        return loop.Step(loss=step_loss, samples=samples, logs={"lr": trainer.lr_scheduler.get_last_lr()[0]})

    def evaluate(step: int) -> dict[str, float]:
        return run_eval(accelerator.unwrap_model(trainer.transformer), components, rows.held, config, step)

    losses = loop.run(
        accelerator,
        config,
        start_step=start_step,
        train_step=train_step,
        evaluate=evaluate if rows.held else None,
        state={"config": config.to_dict()},
    )
    if trainer.ema is not None:
        trainer.ema.copy_to(trainer.params)
    saved = loop.save_and_end(
        accelerator, trainer.transformer, lambda model: {"output": str(save_output(model, config, **components))}
    )
    return {"losses": losses, "start_step": start_step, "step": start_step + len(losses), "output": None, **saved}


def frozen_components(config: Config, accelerator) -> dict:
    """The frozen VAE and text encoder (with tokenizer and processor) of a run, as the pipeline names them."""
    from training import distributed as dist
    from training.models import load_text_components, load_vae

    with dist.unpartitioned_init(accelerator):  # frozen parts stay whole under ZeRO-3 (saved as they are)
        vae = load_vae(config)
        text_encoder, tokenizer, processor = load_text_components(config)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "processor": processor}


def training_source(config: Config, rows, components: dict, device, weight_dtype):
    """Rows read from `data.cache`, or encoded on the fly by the frozen components (moved to `device`)."""
    from training.cache import CacheSource, OnlineSource, cache_settings
    from training.encoding import text_pipeline

    if config.data.cache:
        return CacheSource(config.data.cache, rows.train, cache_settings(config))
    vae, text_encoder = components["vae"], components["text_encoder"]
    vae.to(device, weight_dtype)
    text_encoder.to(device, weight_dtype)
    text_pipe = text_pipeline(text_encoder, components["tokenizer"])
    return OnlineSource(rows.train, rows.buckets, config.data.max_layers, vae=vae, text_pipe=text_pipe, device=device)


@dataclass
class Trainer:
    """The prepared transformer and what updates it: optimizer, lr schedule, trainable parameters, EMA."""

    transformer: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    params: list[torch.nn.Parameter]
    ema: object | None


def prepare_trainer(transformer, config: Config, accelerator, weight_dtype) -> Trainer:
    """LoRA or full fine-tuning set up, AdamW and the lr schedule prepared by accelerate, EMA registered."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel, cast_training_params

    from training.models import setup_lora

    if config.train.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if config.lora.rank > 0:
        transformer.to(weight_dtype)
        setup_lora(transformer, config)
        cast_training_params(transformer, dtype=torch.float32)
    freeze_unreached(transformer)
    optimizer = loop.adamw([p for p in transformer.parameters() if p.requires_grad], config)
    lr_scheduler = get_scheduler(
        config.train.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.train.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.train.max_steps * accelerator.num_processes,
    )
    transformer, optimizer, lr_scheduler = accelerator.prepare(transformer, optimizer, lr_scheduler)
    params = [p for p in transformer.parameters() if p.requires_grad]  # FSDP2 swaps them for DTensors
    ema = None
    if config.ema.enabled:
        ema = EMAModel(params, decay=config.ema.decay, update_after_step=config.ema.update_after_step)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return Trainer(transformer, optimizer, lr_scheduler, params, ema)


def run_eval(transformer, components: dict, held_refs, config: Config, step: int) -> dict[str, float]:
    """Decompose the held-out rows with the current weights; layer folders in OUTPUT/samples/step-N."""
    from training.cache import OnlineSource
    from training.evaluation import evaluate_heldout
    from training.models import build_pipeline, load_scheduler

    source = OnlineSource(held_refs, config_buckets(config), config.data.max_layers)
    rows = [source.pixels(i) for i in range(len(held_refs))]
    device = next(transformer.parameters()).device
    vae, text_encoder = components["vae"], components["text_encoder"]
    moved = [m for m in (vae, text_encoder) if next(m.parameters()).device != device]
    for module in moved:
        module.to(device)
    pipe = build_pipeline(
        **components,  # vae and text_encoder moved in place
        transformer=transformer,
        scheduler=load_scheduler(config),
        resolution=config.data.resolution,
    )
    pipe.set_progress_bar_config(disable=True)
    was_training = transformer.training
    transformer.eval()
    try:
        out = Path(config.output_dir) / "samples" / f"step-{step}"
        return evaluate_heldout(
            pipe, rows, out, steps=config.eval.steps, max_merge=config.eval.max_merge, seed=config.seed
        )
    finally:
        transformer.train(was_training)
        for module in moved:
            module.to("cpu")


def save_output(transformer, config: Config, *, vae, text_encoder, tokenizer, processor) -> Path:
    """Full fine-tuning: a pipeline folder OUTPUT/pipeline; LoRA: OUTPUT/lora/pytorch_lora_weights.safetensors."""
    from diffusers import QwenImageLayeredPipeline

    from layered.fileio import atomic_dir
    from training.models import build_pipeline, load_scheduler, save_pipeline

    out = Path(config.output_dir)
    if config.lora.rank > 0:
        from peft.utils import get_peft_model_state_dict

        with atomic_dir(out / "lora") as tmp:
            QwenImageLayeredPipeline.save_lora_weights(
                tmp, transformer_lora_layers=get_peft_model_state_dict(transformer), safe_serialization=True
            )
        return out / "lora"
    modules = {"transformer": transformer, "vae": vae, "text_encoder": text_encoder}
    modules = {k: m if next(m.parameters()).dtype == torch.float32 else m.float() for k, m in modules.items()}
    pipe = build_pipeline(
        **modules,
        tokenizer=tokenizer,
        processor=processor,
        scheduler=load_scheduler(config),
        resolution=config.data.resolution,
    )
    save_pipeline(pipe, out / "pipeline")
    return out / "pipeline"
