"""Why a PSD file is refused: a short, stable reason code plus a human-readable detail."""

from __future__ import annotations

from layered.errors import InputError


class Rejected(InputError):
    """The file was read (or refused) on purpose and is not used; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def short(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, cut to `limit` characters (for a reason's detail)."""
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")
