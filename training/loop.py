"""The one training loop both trainers run, in the shape of diffusers' accelerate training examples.

A trainer brings only what differs: the model and its optimizer, one optimizer step (its batches and its loss)
and the held-out evaluation. The rest happens here, the same way for the VAE and the MMDiT:
- set-up: a fresh accelerate state, a checked launch (`training.distributed`), the seed, the trackers;
- resume: `--resume` continues at the newest complete checkpoint, or says in one line that there was none;
- divergence: a loss that is not finite ends training (trackers closed), then raises `TrainingDiverged`, and
  nothing more is written (the last good checkpoint stays the newest);
- metrics: OUTPUT/logs/metrics.jsonl gets one JSON line per optimizer step (`step`, `loss`, `samples_per_s` and
  the trainer's own scalars, e.g. `lr`), and an evaluation one more line at its step with its `eval/*` scores.
  TensorBoard (`accelerator.log`) gets the same values every `train.log_every` steps, at evaluated steps and at
  the last step;
- checkpoints: every `train.checkpoint_every` steps and at `max_steps`, the newest `checkpoints_total_limit` kept.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from layered.errors import LayeredError
from training.config import Config


class TrainingDiverged(LayeredError):
    """The loss became NaN or infinite: training stops without writing a checkpoint."""


@dataclass
class Step:
    """What one optimizer step of a trainer reports: its mean loss, the samples it saw, its own scalars."""

    loss: float
    samples: int
    logs: dict[str, float] = field(default_factory=dict)


def fresh_accelerator_state() -> None:
    """Forget a previous in-process run's mixed-precision choice (the process group itself is kept)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def trackers(config: Config) -> list[str]:
    """`["tensorboard"]` when the config reports to it and it is installed, else none."""
    if config.train.report_to != "tensorboard":
        return []
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return ["tensorboard"]


def make_accelerator(config: Config, kwargs_handlers: Iterable = ()):
    """The run's `Accelerator` (logs and checkpoints under OUTPUT), its launch checked, then the seed set."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    from training import distributed as dist

    out = Path(config.output_dir)
    fresh_accelerator_state()
    dist.use_cpu_group_without_accelerator()
    accelerator = Accelerator(
        gradient_accumulation_steps=config.train.gradient_accumulation_steps,
        mixed_precision=config.train.mixed_precision,
        log_with=trackers(config) or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        kwargs_handlers=list(kwargs_handlers) or None,
    )
    dist.check_launch(accelerator)
    dist.enable_cpu_sharding(accelerator, config.data.batch_size)
    set_seed(config.seed)
    return accelerator


def adamw(params, config: Config):
    """AdamW with the config's learning rate, betas, weight decay and epsilon."""
    import torch

    train = config.train
    return torch.optim.AdamW(
        params,
        lr=train.learning_rate,
        betas=(train.adam_beta1, train.adam_beta2),
        weight_decay=train.adam_weight_decay,
        eps=train.adam_epsilon,
    )


def begin(accelerator, config: Config, *, resume: bool, project: str, tracker_config: dict) -> int:
    """Load the newest checkpoint when resuming and start the trackers; the step the run starts at."""
    from training import checkpoint as ckpt

    out = Path(config.output_dir)
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
        accelerator.init_trackers(project, config=tracker_config)
    return start_step


def mean_loss(accelerator, loss, *, output_dir: str | Path, step: int) -> float:
    """The loss averaged over processes; a non-finite one ends training and raises `TrainingDiverged`.

    Called before `backward`, so a diverged step changes no weights; `step` is the 0-based step being run.
    """
    from training import checkpoint as ckpt

    value = accelerator.gather(loss.detach()[None]).mean().item()
    if not math.isfinite(value):
        last = ckpt.latest_checkpoint(output_dir)
        kept = f"last good checkpoint: {last[1]}" if last else "no checkpoint was written"
        accelerator.end_training()
        raise TrainingDiverged(f"loss is {value} at step {step + 1}; stopped ({kept})")
    return value


def backward_and_step(accelerator, loss, *, params, optimizer, max_grad_norm: float, lr_scheduler=None) -> None:
    """Backward, gradients clipped at sync points, one optimizer (and lr) step; called inside `accumulate`."""
    accelerator.backward(loss)
    if accelerator.sync_gradients and max_grad_norm > 0:
        accelerator.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def append_metrics(out: Path, step: int, values: dict) -> None:
    """One JSON line in OUTPUT/logs/metrics.jsonl (beside TensorBoard, readable without it)."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with open(out / "logs" / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, **values}) + "\n")


def run(
    accelerator,
    config: Config,
    *,
    start_step: int,
    train_step: Callable[[int], Step],
    evaluate: Callable[[int], dict[str, float]] | None = None,
    state: dict | None = None,
) -> list[float]:
    """Steps `start_step` .. `max_steps`: `train_step(step)` runs the 0-based step; the losses of the steps run.

    `evaluate(step)` (main process only, every `eval.every` steps) returns `eval/*` scores; `state` is stored in
    each checkpoint's training_state.json beside the step and the loss.
    """
    from tqdm.auto import tqdm

    from training import checkpoint as ckpt

    out, train = Path(config.output_dir), config.train
    losses: list[float] = []
    progress = tqdm(
        total=train.max_steps, initial=start_step, disable=not accelerator.is_local_main_process, desc="train"
    )
    started, samples, step = time.perf_counter(), 0, start_step
    while step < train.max_steps:
        done = train_step(step)
        step += 1
        samples += done.samples
        losses.append(done.loss)
        rate = samples / max(time.perf_counter() - started, 1e-9)
        progress.update(1)
        progress.set_postfix(loss=f"{done.loss:.4f}", samples_per_s=f"{rate:.2f}")
        logs = {"loss": done.loss, **done.logs, "samples_per_s": rate}
        if accelerator.is_main_process:
            append_metrics(out, step, logs)
        evaluated = evaluate is not None and config.eval.every and step % config.eval.every == 0
        if evaluated:
            if accelerator.is_main_process:
                scores = evaluate(step)
                logs.update(scores)
                append_metrics(out, step, scores)
            accelerator.wait_for_everyone()
        if step % train.log_every == 0 or step == train.max_steps or evaluated:
            accelerator.log(logs, step=step)
        if step % train.checkpoint_every == 0 or step == train.max_steps:
            extra = {"loss": done.loss, **(state or {})}
            ckpt.save_checkpoint(accelerator, out, step, train.checkpoints_total_limit, extra)
    progress.close()
    return losses


def save_and_end(accelerator, model, save: Callable[[object], dict]) -> dict:
    """Gather the trained weights (collective under FSDP / ZeRO-3), `save(whole model)` on the main process, end.

    Returns what `save` returned (the main process), else {}.
    """
    from training import distributed as dist

    accelerator.wait_for_everyone()
    weights = dist.full_state_dict(accelerator, model)  # every process takes part
    saved: dict = {}
    if accelerator.is_main_process:
        saved = save(dist.whole_model(accelerator, accelerator.unwrap_model(model), weights))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return saved
