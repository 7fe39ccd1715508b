"""User-facing errors: one message naming the file:line:col or the field, exit code 2.

Every command reports through `FsedpError` so that bad input looks the same everywhere:
`path:line:col: error: message` (or `path: error: field: message`), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USER_ERROR = 2


class FsedpError(Exception):
    """A mistake in the user's input, reported without a traceback."""

    exit_code: int = EXIT_USER_ERROR

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        field: str | None = None,
        context: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.col = col
        self.field = field
        self.context = context
        """Optional extra lines shown under the message (e.g. the source line and a caret)."""

    def location(self) -> str:
        if self.path is None:
            return ""
        loc = str(self.path)
        if self.line is not None:
            loc += f":{self.line}"
            if self.col is not None:
                loc += f":{self.col}"
        return loc

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        loc = self.location()
        out = f"{loc}: error: {text}" if loc else f"error: {text}"
        if self.context:
            out += "\n" + self.context.rstrip("\n")
        return out


def field_error(path: str | None, field: str, message: str) -> FsedpError:
    """An error about one named field of a structured input (TOML, JSON, npz)."""
    return FsedpError(message, path=path, field=field)


def source_context(text: str, line: int, col: int) -> str:
    """The 1-based `line` of `text` with a caret under `col`, as compilers print it."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    src = lines[line - 1]
    return f"{src}\n{' ' * max(col - 1, 0)}^"


@contextmanager
def reported(prog: str = "fsedpc") -> Iterator[None]:
    """Turn an `FsedpError` raised inside into a message on stderr and its exit code."""
    try:
        yield
    except FsedpError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
