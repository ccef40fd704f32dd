"""What a reader simplified to open a file (`LayerStack.notes`), said on stderr as one line."""

from __future__ import annotations

import os
import sys

from layered.errors import one_line
from layered.stack import LayerStack


def say_notes(stack: LayerStack, source: str | os.PathLike, command: str) -> None:
    """Print `stack.notes`, if any, as one line on stderr: `layered COMMAND: note: SOURCE: a; b; c`."""
    if stack.notes:
        print(one_line(f"layered {command}: note: {source}: {'; '.join(stack.notes)}"), file=sys.stderr)
