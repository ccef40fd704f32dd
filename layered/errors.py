"""Errors that mean "the input is bad", as opposed to a bug: the CLI prints them as one line, exit 2."""


class LayeredError(Exception):
    """Base class for errors caused by user input; the message is shown to the user as is."""


class InputError(LayeredError):
    """An input file or folder is missing, unreadable, of the wrong kind, or too large."""


def one_line(text: str) -> str:
    """`text` with control characters escaped (a newline in a file name must not split an error line)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))
