"""The shared vocabulary of a decomposition request: its limits, its choices, and the checks of user numbers.

A leaf module (it imports only `layered.errors`), so the dispatcher (`layered.decompose`), the methods
(`layered.classic`, `layered.pipeline`, ...) and the commands all read one rule without importing each other.

Layer count, one rule for every method: "auto" or a whole number from 1 to `MAX_LAYERS` (20, the paper's
maximum). What "auto" means is each method's own: the classic method merges colour groups while merging is
cheap, ending with at most `CLASSIC_AUTO_LAYERS`; the model decomposes into `MODEL_AUTO_LAYERS` and then drops
the layers whose removal leaves the composite unchanged (`layered.layer_tools.prune_layers`).
"""

from __future__ import annotations

import operator

from layered.errors import InputError

MAX_LAYERS = 20  # the paper's maximum: no method is asked for more layers than this
# One denoising step has no schedule: the flow-match scheduler's stretch to `shift_terminal` divides by zero.
MIN_STEPS = 2
CLASSIC_AUTO_LAYERS = 12  # classic "auto": at most this many layers
MODEL_AUTO_LAYERS = 8  # model "auto": decompose into this many, then prune
DTYPES = ("auto", "float32", "bfloat16", "float16")
OFFLOAD_MODES = ("none", "model", "sequential", "group")


def parse_layers(value: object) -> int | str:
    """The layer count: "auto" (also for None or "") or a whole number 1..MAX_LAYERS from an int, float or string."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return "auto"
    return whole_number(value, "layers", 1, MAX_LAYERS, also="'auto' or ")


def whole_number(value: object, name: str, low: int, high: int, also: str = "") -> int:
    """`value` (int, whole float or its text) as an int in [low, high]; InputError naming the range otherwise."""
    number = None if isinstance(value, bool) else _whole(value)
    if number is None or not low <= number <= high:
        raise InputError(f"{name} must be {also}a whole number from {low} to {high}, got {value!r}")
    return number


def number_in(value: object, name: str, low: float, high: float) -> float:
    """`value` (a number or its text) as a float in [low, high]; InputError naming the range otherwise."""
    message = f"{name} must be a number from {low} to {high}, got {value!r}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(message) from None
    if not low <= number <= high:
        raise InputError(message)
    return number


def choice(value: object, name: str, choices: tuple[str, ...], default: str) -> str:
    """`value` (case and spaces ignored; empty: `default`) if it is one of `choices`; InputError listing them."""
    text = str(value or default).strip().lower()
    if text not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {text!r}")
    return text


def _whole(value: object) -> int | None:
    try:
        return operator.index(value)  # int and numpy integers, without importing numpy here
    except TypeError:
        pass
    try:
        return int(str(value).strip())  # exact, however large
    except ValueError:
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None
