"""VLD-MMDiT training on tiny models built in code: overfitting per stage; the trained folder loads in
LayeredPipeline and decomposes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train_data import write_shards

from training.config import load_config
from training.mmdit import train_mmdit

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ds"), rows=4, layers=3)


def tiny(stage: str, data: Path, out: Path, **overrides):
    settings = {"data.path": str(data), "output_dir": str(out), "train.report_to": None}
    settings.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(CONFIGS / f"tiny_{stage}.yaml", settings)


@pytest.mark.parametrize("stage", ["t2rgba", "t2l", "i2l"])
def test_overfits_a_fixed_batch(stage, dataset, tmp_path):
    config = tiny(
        stage,
        dataset,
        tmp_path,
        train__max_steps=60,
        train__learning_rate=5e-3,
        train__overfit_batch=True,
        train__checkpoint_every=1000,
        data__batch_size=2,
        data__caption_dropout=0.0,
    )
    result = train_mmdit(config)
    losses = result["losses"]
    assert len(losses) == 60
    assert losses[0] / min(losses[-5:]) >= 10, losses[::10]
    assert Path(result["output"], "model_index.json").is_file()
    if stage == "i2l":
        from layered.pipeline import LayeredPipeline

        pipe = LayeredPipeline.from_pretrained(result["output"])
        image = np.zeros((32, 32, 3), np.uint8)
        image[:, :16] = (200, 40, 40)
        from PIL import Image

        out = pipe(Image.fromarray(image), prompt="picture number 0", layers=2, num_inference_steps=2)
        assert len(out.images[0]) == 2 and out.images[0][0].size == (32, 32)
        assert len(out.stacks[0]) <= 2


def test_gradient_checkpointing_does_not_change_the_losses(dataset, tmp_path):
    runs = []
    for checkpointing in (False, True):
        config = tiny(
            "i2l",
            dataset,
            tmp_path / str(checkpointing),
            train__max_steps=3,
            train__gradient_checkpointing=checkpointing,
            data__batch_size=2,
        )
        runs.append(train_mmdit(config)["losses"])
    assert runs[1] == pytest.approx(runs[0], rel=1e-5)
