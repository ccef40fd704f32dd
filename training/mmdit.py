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

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from layered.errors import LayeredError
from training.config import Config
from training.data import BatchPlan, index_rows, make_buckets, row_seed
from training.encoding import img_shapes, pack, pad_embeddings


class TrainingDiverged(LayeredError):
    """The loss became NaN or infinite: training stops without writing a checkpoint."""


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


def fresh_accelerator_state() -> None:
    """Forget a previous in-process run's mixed-precision choice (the process group itself is kept)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def append_metrics(out: Path, step: int, values: dict) -> None:
    """One JSON line per step in OUTPUT/logs/metrics.jsonl (beside TensorBoard, readable without it)."""
    import json

    (out / "logs").mkdir(parents=True, exist_ok=True)
    with open(out / "logs" / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, **values}) + "\n")


def _trackers(config: Config) -> list[str]:
    if config.train.report_to != "tensorboard":
        return []
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return ["tensorboard"]


def setup_lora(transformer, config: Config) -> None:
    """Freeze the transformer and add a peft LoRA adapter on the attention and MLP projections."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha or config.lora.rank,
            lora_dropout=config.lora.dropout,
            init_lora_weights="gaussian",
            target_modules=config.lora.target_modules,
        )
    )


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
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel, cast_training_params
    from tqdm.auto import tqdm

    from training import checkpoint as ckpt
    from training import distributed as dist
    from training.cache import CacheSource, OnlineSource, cache_settings
    from training.encoding import text_pipeline
    from training.models import load_scheduler, load_text_components, load_transformer, load_vae

    out = Path(config.output_dir)
    fresh_accelerator_state()
    dist.use_cpu_group_without_accelerator()
    accelerator = Accelerator(
        gradient_accumulation_steps=config.train.gradient_accumulation_steps,
        mixed_precision=config.train.mixed_precision,
        log_with=_trackers(config) or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        # find_unused_parameters: the last block's text-stream outputs never reach the loss.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    dist.check_launch(accelerator)
    dist.enable_cpu_sharding(accelerator, config.data.batch_size)
    set_seed(config.seed)
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.train.mixed_precision, torch.float32)
    device = accelerator.device

    if config.data.path is None and source is None:
        raise LayeredError("no training data: set data.path in the config or pass --data DIR")
    refs = index_rows(config.data.path) if source is None else source.refs
    buckets = make_buckets(config.data.resolution, config.data.bucket_ratios, config.data.multiple)
    held_refs = refs[: config.data.held_out] if config.data.held_out < len(refs) else []
    train_refs = refs[len(held_refs) :]
    plan = BatchPlan(
        train_refs, buckets, config.data.max_layers, config.data.batch_size, accelerator.num_processes, config.seed
    )

    transformer = load_transformer(config)
    with dist.unpartitioned_init(accelerator):  # frozen parts stay whole under ZeRO-3 (saved as they are)
        vae = load_vae(config)
        text_encoder, tokenizer, processor = load_text_components(config)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if source is None:
        if config.data.cache:
            source = CacheSource(config.data.cache, train_refs, cache_settings(config))
        else:
            vae.to(device, weight_dtype)
            text_encoder.to(device, weight_dtype)
            source = OnlineSource(
                train_refs, buckets, config.data.max_layers, vae, text_pipeline(text_encoder, tokenizer), device
            )

    components = {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "processor": processor}
    if config.train.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if config.lora.rank > 0:
        transformer.to(weight_dtype)
        setup_lora(transformer, config)
        cast_training_params(transformer, dtype=torch.float32)
    freeze_unreached(transformer)
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=config.train.learning_rate,
        betas=(config.train.adam_beta1, config.train.adam_beta2),
        weight_decay=config.train.adam_weight_decay,
        eps=config.train.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        config.train.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.train.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.train.max_steps * accelerator.num_processes,
    )
    transformer, optimizer, lr_scheduler = accelerator.prepare(transformer, optimizer, lr_scheduler)
    params = [p for p in transformer.parameters() if p.requires_grad]  # FSDP2 swaps them for DTensors
    ema = (
        EMAModel(params, decay=config.ema.decay, update_after_step=config.ema.update_after_step)
        if config.ema.enabled
        else None
    )
    if ema is not None:
        ema.to(device)
        accelerator.register_for_checkpointing(ema)
    train_scheduler = FlowMatchEulerDiscreteScheduler.from_config(load_scheduler(config).config)

    start_step = 0
    if resume:
        found = ckpt.latest_checkpoint(out)
        if found is not None:
            accelerator.load_state(str(found[1]))
            start_step = found[0]
            accelerator.print(f"resumed from {found[1]} at step {start_step}")
        else:
            accelerator.print(f"--resume: no checkpoint in {ckpt.checkpoint_dir(out)}, starting at step 0")
    if accelerator.is_main_process:
        accelerator.init_trackers("layered-mmdit", config={"stage": config.stage, "lr": config.train.learning_rate})

    accum = config.train.gradient_accumulation_steps
    losses: list[float] = []
    progress = tqdm(
        total=config.train.max_steps, initial=start_step, disable=not accelerator.is_local_main_process, desc="train"
    )
    transformer.train()
    started, samples = time.perf_counter(), 0
    step = start_step
    while step < config.train.max_steps:
        step_loss = 0.0
        for k in range(accum):
            micro = step * accum + k
            at = 0 if config.train.overfit_batch else micro  # overfit_batch: the same rows, noise and s every step
            batch = assemble(source, plan.process_rows(at, accelerator.process_index), at, config)
            accelerator.step = micro  # keeps accumulate()'s sync points right after a resume
            with accelerator.accumulate(transformer):
                loss = compute_loss(transformer, batch, train_scheduler, config, device)
                mean_loss = accelerator.gather(loss.detach()[None]).mean().item()
                if not math.isfinite(mean_loss):
                    last = ckpt.latest_checkpoint(out)
                    kept = f"last good checkpoint: {last[1]}" if last else "no checkpoint was written"
                    accelerator.end_training()
                    raise TrainingDiverged(f"loss is {mean_loss} at step {step + 1}; stopped ({kept})")
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.train.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, config.train.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step_loss += mean_loss / accum
            samples += config.data.batch_size * accelerator.num_processes
        step += 1
        if ema is not None:
            ema.step(params)
        losses.append(step_loss)
        rate = samples / max(time.perf_counter() - started, 1e-9)
        progress.update(1)
        progress.set_postfix(loss=f"{step_loss:.4f}", samples_per_s=f"{rate:.2f}")
        logs = {"loss": step_loss, "lr": lr_scheduler.get_last_lr()[0], "samples_per_s": rate}
        if accelerator.is_main_process:
            append_metrics(out, step, logs)
        if held_refs and config.eval.every and step % config.eval.every == 0:
            if accelerator.is_main_process:
                logs.update(run_eval(accelerator.unwrap_model(transformer), components, held_refs, config, step))
                append_metrics(out, step, {k: v for k, v in logs.items() if k.startswith("eval/")})
            accelerator.wait_for_everyone()
        if step % config.train.log_every == 0 or step == config.train.max_steps or len(logs) > 3:
            accelerator.log(logs, step=step)
        if step % config.train.checkpoint_every == 0 or step == config.train.max_steps:
            ckpt.save_checkpoint(
                accelerator,
                out,
                step,
                config.train.checkpoints_total_limit,
                {"loss": step_loss, "config": config.to_dict()},
            )
    progress.close()

    result = {"losses": losses, "start_step": start_step, "step": step, "output": None}
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(params)
    weights = dist.full_state_dict(accelerator, transformer)  # collective under FSDP / ZeRO-3: every process
    if accelerator.is_main_process:
        model = dist.whole_model(accelerator, accelerator.unwrap_model(transformer), weights)
        result["output"] = str(save_output(model, config, vae, text_encoder, tokenizer, processor))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def run_eval(transformer, components: dict, held_refs, config: Config, step: int) -> dict[str, float]:
    """Decompose the held-out rows with the current weights; layer folders in OUTPUT/samples/step-N."""
    from training.cache import OnlineSource
    from training.data import make_buckets
    from training.evaluation import evaluate_heldout
    from training.models import build_pipeline, load_scheduler

    buckets = make_buckets(config.data.resolution, config.data.bucket_ratios, config.data.multiple)
    source = OnlineSource(held_refs, buckets, config.data.max_layers, None, None, "cpu")
    rows = [source.pixels(i) for i in range(len(held_refs))]
    device = next(transformer.parameters()).device
    vae, text_encoder = components["vae"], components["text_encoder"]
    moved = [m for m in (vae, text_encoder) if next(m.parameters()).device != device]
    for module in moved:
        module.to(device)
    pipe = build_pipeline(
        transformer,
        vae,
        text_encoder,
        components["tokenizer"],
        components["processor"],
        load_scheduler(config),
        resolution=config.data.resolution,
    )
    pipe.set_progress_bar_config(disable=True)
    was_training = transformer.training
    transformer.eval()
    try:
        out = Path(config.output_dir) / "samples" / f"step-{step}"
        return evaluate_heldout(pipe, rows, out, config.eval.steps, config.eval.max_merge, config.seed)
    finally:
        transformer.train(was_training)
        for module in moved:
            module.to("cpu")


def save_output(transformer, config: Config, vae, text_encoder, tokenizer, processor) -> Path:
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
    modules = [
        m if next(m.parameters()).dtype == torch.float32 else m.float() for m in (transformer, vae, text_encoder)
    ]
    pipe = build_pipeline(*modules, tokenizer, processor, load_scheduler(config), resolution=config.data.resolution)
    save_pipeline(pipe, out / "pipeline")
    return out / "pipeline"
