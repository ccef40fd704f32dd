"""The dataset's fidelity gate: the PSD core's check against the stored composite (`layered.psd.fidelity`)."""

from __future__ import annotations

from layered.psd.fidelity import PERFECT_PSNR, comparable, psnr

__all__ = ["PERFECT_PSNR", "comparable", "psnr"]
