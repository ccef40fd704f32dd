"""training.distributed: a launch whose processes did not form one group is refused before anything is written."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from layered.errors import InputError
from training.distributed import check_launch, use_cpu_group_without_accelerator


def test_processes_that_each_run_alone_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="launched as 2 processes, but accelerate runs them as 1"):
        check_launch(SimpleNamespace(num_processes=1))
    check_launch(SimpleNamespace(num_processes=2))
    monkeypatch.delenv("WORLD_SIZE")
    check_launch(SimpleNamespace(num_processes=1))  # a plain single-process run


def test_several_processes_without_a_gpu_join_a_cpu_group(monkeypatch):
    import torch

    monkeypatch.setenv("ACCELERATE_USE_CPU", "")  # recorded, so the value set below is undone after the test
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setenv("WORLD_SIZE", "1")
    use_cpu_group_without_accelerator()
    assert "ACCELERATE_USE_CPU" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    use_cpu_group_without_accelerator()
    assert os.environ["ACCELERATE_USE_CPU"] == "true"
