"""Two CPU processes under the shipped DeepSpeed ZeRO-2 and ZeRO-3 configs (gloo): the same checks as FSDP.

DeepSpeed JIT-compiles its shared-memory comm op on first use on a CPU (a C++ compiler, minutes, once per machine).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from test_train_data import write_shards
from test_train_fsdp import assert_same_weights, command, files, losses, run
from test_train_lora import decompose

pytest.importorskip("deepspeed")
pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(shutil.which("c++") is None, reason="DeepSpeed on CPU compiles a C++ op"),
]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deepspeed")
    data = write_shards(tmp / "ds", rows=6, layers=[2, 3])
    run(command(tmp, "one", data, batch=2, launch=None))
    return tmp, data


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_writes_once_a_pipeline_that_loads_and_equals_one_process(one_process, stage):
    tmp, data = one_process
    name = f"zero{stage}"
    printed = run(command(tmp, name, data, batch=1, launch=f"deepspeed_zero{stage}"))
    two, one = tmp / name, tmp / "one"
    assert printed.count("wrote ") == 1
    assert losses(two) == pytest.approx(losses(one), rel=1e-4) and len(losses(two)) == 4
    assert (two / "checkpoints" / "checkpoint-4" / "pytorch_model").is_dir()  # DeepSpeed's own checkpoint
    assert files(two / "pipeline") == files(one / "pipeline")
    assert_same_weights(two / "pipeline", one / "pipeline", rtol=1e-4, atol=1e-5)

    from layered.pipeline import LayeredPipeline

    pipe = LayeredPipeline.from_pretrained(two / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    layers = decompose(pipe, image)
    assert layers.shape == (2, 32, 32, 4) and np.isfinite(layers).all()
