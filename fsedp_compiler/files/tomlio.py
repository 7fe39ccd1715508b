"""Parsing untrusted TOML text (targets, sweep specs) into located errors only.

`tomllib.loads` raises `RecursionError` on deeply nested arrays or tables and puts the line and
column inside its message; here both become one `FsedpError` naming the file, line and column.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from fsedp_compiler.errors import FsedpError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def loads_toml(text: str, path: str) -> dict[str, Any]:
    """The TOML document `text` (read from `path`), or a located `FsedpError`."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise FsedpError("invalid TOML: arrays or tables nested too deeply", path=path) from None
    except tomllib.TOMLDecodeError as err:
        m = _AT.search(str(err))
        msg = _AT.sub("", str(err)) or "invalid TOML"
        raise FsedpError(msg, path=path, line=int(m.group(1)) if m else None,
                         col=int(m.group(2)) if m else None) from None
