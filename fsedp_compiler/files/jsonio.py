"""Parsing untrusted JSON text (configs, routing dumps, trace metadata) into located errors only.

`json.loads` raises more than `JSONDecodeError` on hostile input: `RecursionError` for deep
nesting, `ValueError` for an integer of more than 4300 digits; and it accepts `NaN` and
`Infinity`, which are not JSON. Every such input becomes one `FsedpError` here.
"""

from __future__ import annotations

import json
from typing import Any

from fsedp_compiler.errors import FsedpError, source_context


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str, path: str | None, *, line: int | None = None, field: str | None = None,
              context: bool = True) -> Any:
    """Parse `text`; errors name `path` and the line:col (`line`: the line of a JSONL file; `field`:
    the field holding the text)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        if field is not None:  # JSON inside a field (a trace's meta): the character, not the file's line
            raise FsedpError(f"invalid JSON: {err.msg} at char {err.pos}", path=path, field=field) from None
        at_line = line if line is not None else err.lineno
        ctx = source_context(text, err.lineno, err.colno) if context and line is None else None
        raise FsedpError(f"invalid JSON: {err.msg}", path=path, line=at_line, col=err.colno, context=ctx) from None
    except RecursionError:
        raise FsedpError("invalid JSON: arrays or objects nested too deeply", path=path, line=line,
                         field=field) from None
    except ValueError as err:  # NaN/Infinity, or an integer beyond Python's 4300-digit limit
        reason = str(err).split(";")[0].split(":")[0] if "digits" in str(err) else str(err)
        raise FsedpError(f"invalid JSON: {reason}", path=path, line=line, field=field) from None
