"""`layered train peel CONFIG`: the peel network on peel rounds of synthetic designs, through `training.loop`.

Loss per pixel: the top elements' alpha by BCE + dice; their kind by cross-entropy where the target is clearly
inside (alpha > 0.5) or clearly outside (alpha < `layered.peel.EMPTY`) an element; the text boxes and the
touching pixels by BCE. The held-out evaluation scores the predicted top alpha (soft IoU) on fixed rounds of
held-out designs, and how often the network stops (an empty top) where it should.
Output: OUTPUT/peel, a `PeelNet` folder (`save_pretrained`), which `python -m training.peel export` turns into the
shipped fp16 folder.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from layered.errors import LayeredError
from layered.peel import EMPTY
from layered.peel_model import PeelNet
from training import loop
from training.config import Config
from training.peel_data import SynthOptions, design_layers, load_photos, peel_rounds

HELD_OUT_SEED = 1000  # never drawn for training (benchmarks/bench_quality.py uses its designs 1..N)
HELD_OUT_FIRST = 10_000  # the trainer's own held-out designs start here, apart from the benchmark's
LOSS_WEIGHTS = {"alpha": 1.0, "dice": 1.0, "kind": 0.5, "text_box": 0.5, "touch": 0.5}
TOUCH_POS_WEIGHT = 5.0


def synth_options(config: Config, **changes) -> SynthOptions:
    """The config's `data.synth` section as `SynthOptions` at the config's working size."""
    values = {"size": config.data.resolution, **(config.data.synth or {}), **changes}
    if "draw_sizes" in values:
        values["draw_sizes"] = tuple(values["draw_sizes"])
    return SynthOptions(**values)


def to_tensors(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Rounds -> the network's input (N, 4, H, W) and its targets."""
    images = np.stack([s["image"] for s in samples]).astype(np.float32) / 127.5 - 1.0
    removed = np.stack([s["removed"] for s in samples])[:, None]
    x = np.concatenate([images.transpose(0, 3, 1, 2), removed], axis=1)
    out = {"input": torch.from_numpy(np.ascontiguousarray(x, np.float32))}
    for key in ("alpha", "text_box", "touch"):
        out[key] = torch.from_numpy(np.stack([s[key] for s in samples]).astype(np.float32))
    kind = np.stack([s["kind"] for s in samples])
    unsure = (out["alpha"].numpy() > EMPTY) & (out["alpha"].numpy() <= 0.5)
    out["kind"] = torch.from_numpy(np.where(unsure, -100, kind))
    return out


def batch_for_step(
    step: int, batch_size: int, options: SynthOptions, photos: list, remove=None
) -> dict[str, torch.Tensor]:
    """The batch of `step`: the rounds of designs step*B, step*B+1, ... until there are B (a pure function;
    `remove` is the teacher's removal, `teacher_removal`, a fixed network)."""
    samples: list[dict] = []
    index = step * batch_size
    while len(samples) < batch_size:
        layers, kinds = design_layers(index, options, photos)
        rng = np.random.default_rng([options.seed, index, 11])
        samples.extend(
            peel_rounds(
                layers,
                kinds,
                rng,
                options.exact_next,
                options.imperfect_next,
                remove=remove,
                on_policy_next=options.on_policy_next,
            )
        )
        index += 1
    return to_tensors(samples[:batch_size])


def teacher_removal(folder: str | None):
    """The alphas the network of `folder` takes off an image, as the peel loop does (`layered.peel.take_top`);
    None without a teacher."""
    if not folder:
        return None
    from layered.peel import load_peel, take_top

    model = load_peel(folder)
    return lambda rgb, removed: [alpha for alpha, _ in take_top(model, rgb, removed)]


def peel_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the five terms (module docstring) and each term's value."""
    alpha_logit, kind_logits, box_logit, touch_logit = logits[:, 0], logits[:, 1:5], logits[:, 5], logits[:, 6]
    prob = torch.sigmoid(alpha_logit)
    target = batch["alpha"]
    inter = (prob * target).sum(dim=(1, 2))
    dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1.0)
    terms = {
        "alpha": F.binary_cross_entropy_with_logits(alpha_logit, target),
        "dice": dice.mean(),
        "kind": F.cross_entropy(kind_logits, batch["kind"], ignore_index=-100),
        "text_box": F.binary_cross_entropy_with_logits(box_logit, batch["text_box"]),
        "touch": F.binary_cross_entropy_with_logits(
            touch_logit, batch["touch"], pos_weight=torch.tensor(TOUCH_POS_WEIGHT, device=logits.device)
        ),
    }
    total = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
    return total, {f"loss/{k}": float(v.detach()) for k, v in terms.items()}


def held_out_rounds(config: Config, count: int) -> list[dict]:
    """Fixed rounds of `count` held-out designs (every round of each), at the working size."""
    options = synth_options(config, seed=HELD_OUT_SEED, exact_next=0.0)
    photos = load_photos(options.photos)
    rounds = []
    for index in range(HELD_OUT_FIRST, HELD_OUT_FIRST + count):
        layers, kinds = design_layers(index, options, photos)
        rounds.extend(peel_rounds(layers, kinds, np.random.default_rng(index), 0.0))
    return rounds


@torch.no_grad()
def evaluate_rounds(model: PeelNet, rounds: list[dict], batch_size: int = 16) -> dict[str, float]:
    """Soft IoU of the top alpha where there is a top, the stop accuracy where there is none, kind accuracy."""
    ious, stops, kind_hits, kind_total = [], [], 0, 0
    for start in range(0, len(rounds), batch_size):
        batch = to_tensors(rounds[start : start + batch_size])
        logits = model(batch["input"])
        prob = torch.sigmoid(logits[:, 0])
        kind = 1 + logits[:, 2:5].argmax(dim=1)  # as the loop reads it: the kind of the element at each pixel
        for i in range(prob.shape[0]):
            target = batch["alpha"][i]
            if float(target.max()) <= EMPTY:
                stops.append(float(prob[i].max()) < 0.5)
                continue
            ious.append(float(torch.minimum(prob[i], target).sum() / torch.maximum(prob[i], target).sum()))
            known = batch["kind"][i] > 0
            kind_hits += int((kind[i][known] == batch["kind"][i][known]).sum())
            kind_total += int(known.sum())
    return {
        "top_iou": float(np.mean(ious)) if ious else 0.0,
        "stop_accuracy": float(np.mean(stops)) if stops else 0.0,
        "kind_accuracy": kind_hits / max(kind_total, 1),
    }


def _batches(start_step: int, max_steps: int, batch_size: int, options: SynthOptions):
    """Steps' batches, made one ahead in a worker process (DataLoader over the step numbers)."""

    class Steps(torch.utils.data.IterableDataset):
        def __iter__(self):
            photos = load_photos(options.photos)
            remove = teacher_removal(options.teacher)
            for step in range(start_step, max_steps):
                yield batch_for_step(step, batch_size, options, photos, remove)

    return iter(torch.utils.data.DataLoader(Steps(), batch_size=None, num_workers=1, prefetch_factor=2))


def initial_model(config: Config) -> PeelNet:
    """A new network (`model.peel`), or the previous stage's (`model.init_from`) grown by the residual blocks
    that `model.peel` adds: they start as the identity, so training starts from what the previous stage computed."""
    if not config.model.init_from:
        return PeelNet(**(config.model.peel or {}))
    previous = PeelNet.from_pretrained(config.model.init_from)
    fields = inspect.signature(PeelNet.__init__).parameters.keys() - {"self"}
    before = {k: previous.config[k] for k in fields if k in previous.config}
    wanted = {**before, **(config.model.peel or {})}
    if wanted == before:
        return previous
    changed = {k for k in wanted if wanted[k] != before.get(k)}
    if changed != {"bottleneck_blocks"} or wanted["bottleneck_blocks"] < before.get("bottleneck_blocks", 0):
        raise LayeredError(
            f"model.peel {config.model.peel}: a network from --init-from can only gain bottleneck_blocks "
            f"(it has {before})"
        )
    grown = PeelNet(**wanted)
    missing, unexpected = grown.load_state_dict(previous.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("bottleneck.") for key in missing)
    return grown


def train_peel(config: Config, resume: bool = False) -> dict:
    """Train the peel network; checkpoints as the other trainers; output OUTPUT/peel (a `PeelNet` folder)."""
    from diffusers.optimization import get_scheduler

    from layered.peel import load_peel

    options = synth_options(config)
    if options.teacher:  # a bad teacher folder: one clear error now, not a traceback from the data worker
        load_peel(options.teacher)
    out = Path(config.output_dir)
    accelerator = loop.make_accelerator(config)
    model = initial_model(config)
    optimizer = loop.adamw(model.parameters(), config)
    lr_scheduler = get_scheduler(
        config.train.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.train.lr_warmup_steps,
        num_training_steps=config.train.max_steps,
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    start_step = loop.begin(
        accelerator, config, resume=resume, project="layered-peel", tracker_config={"lr": config.train.learning_rate}
    )
    batches = _batches(start_step, config.train.max_steps, config.data.batch_size, options)
    held = held_out_rounds(config, config.data.held_out) if config.data.held_out else []
    model.train()

    def train_step(step: int) -> loop.Step:
        batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
        with accelerator.accumulate(model):
            loss, terms = peel_loss(model(batch["input"]), batch)
            mean = loop.mean_loss(accelerator, loss, output_dir=out, step=step)
            loop.backward_and_step(
                accelerator,
                loss,
                params=model.parameters(),
                optimizer=optimizer,
                max_grad_norm=config.train.max_grad_norm,
                lr_scheduler=lr_scheduler,
            )
        terms["lr"] = lr_scheduler.get_last_lr()[0]
        return loop.Step(loss=mean, samples=batch["input"].shape[0] * accelerator.num_processes, logs=terms)

    def evaluate(_step: int) -> dict[str, float]:
        unwrapped = accelerator.unwrap_model(model).eval()
        scores = evaluate_rounds(unwrapped, held)
        unwrapped.train()
        return {f"eval/{k}": v for k, v in scores.items()}

    losses = loop.run(
        accelerator, config, start_step=start_step, train_step=train_step, evaluate=evaluate if held else None
    )
    saved = loop.save_and_end(accelerator, model, lambda whole: save_peel(whole, out / "peel"))
    return {"losses": losses, "start_step": start_step, "step": start_step + len(losses), **saved}


def save_peel(model: PeelNet, folder: Path, dtype: torch.dtype = torch.float32) -> dict:
    """`model` written to `folder` (safetensors, atomically) in `dtype`."""
    from layered.fileio import atomic_dir

    copy = PeelNet.from_config(model.config)
    copy.load_state_dict(model.state_dict())
    with atomic_dir(folder) as tmp:
        torch.nn.Module.to(copy, dtype).eval().save_pretrained(tmp, safe_serialization=True)  # no mixed-dtype check
    return {"output": str(folder)}


def main(argv: list[str] | None = None) -> int:
    """`python -m training.peel export SOURCE TARGET`: the shipped fp16 copy of a trained network.

    SOURCE is a `PeelNet` folder (OUTPUT/peel), or a checkpoint of a run with `--config` its training config.
    """
    from safetensors.torch import load_file

    from training.config import load_config

    parser = argparse.ArgumentParser(prog="python -m training.peel")
    parser.add_argument("action", choices=["export"])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--config", help="the run's config (when SOURCE is a checkpoint folder)")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = parser.parse_args(argv)
    source = Path(args.source)
    if (source / "config.json").is_file():
        model = PeelNet.from_pretrained(source)
    else:
        model = PeelNet(**(load_config(args.config).model.peel or {}))
        model.load_state_dict(load_file(source / "model.safetensors"))
    print(save_peel(model, Path(args.target), getattr(torch, args.dtype))["output"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
