"""Why a PSD file does not become a training sample: a short reason code plus a human-readable detail."""

from __future__ import annotations

from layered.errors import InputError


class Rejected(InputError):
    """The file was read (or refused) on purpose and does not make a sample; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
