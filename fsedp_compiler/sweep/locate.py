"""The TOML line a field path points at, so that a schema error can name `spec.toml:LINE`.

tomllib keeps no positions, so this reads the text line by line: table headers (`[set]`,
`[[grid]]`, `[grid.set]`) and `key = ...` lines (dotted or quoted keys too) give each line its key
path, e.g. ("grid", 1, "tokens"); the line whose path is the longest prefix of the field's wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_PART = re.compile(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'")


def _parts(dotted: str) -> list[str]:
    """Key parts; a quoted key with dots splits too (`"link.gbps"` means `link.gbps` in a `[set]`)."""
    return [q for p in _PART.findall(dotted) for q in p.strip("\"'").split(".")]


def normalize(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """A field path with dotted string parts split (`("set", "link.gbps")` → `("set", "link", "gbps")`)."""
    out: list[str | int] = []
    for part in loc:
        out.extend(part.split(".") if isinstance(part, str) else [part])
    return tuple(out)


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the field `loc` in the TOML `text`, or None when it cannot be found."""
    want = normalize(loc)
    table: tuple[str | int, ...] = ()
    arrays: dict[tuple[str | int, ...], int] = {}
    best, best_len = None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if (m := _HEADER.match(line)) is not None:
            path = tuple(_parts(m.group(2)))
            if m.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                table = (*path, arrays[path])
            else:  # [grid.set] inside the latest [[grid]]
                table = _inside_arrays(path, arrays)
            key_path = table
        elif (m := _KEY.match(line)) is not None:
            key_path = (*table, *_parts(m.group(1)))
        else:
            continue
        n = _common(key_path, want)
        if n == len(key_path) and n > best_len:
            best, best_len = number, n
    return best


def _inside_arrays(path: tuple[str, ...], arrays: dict[tuple[str | int, ...], int]) -> tuple[str | int, ...]:
    """`("grid", "set")` → `("grid", 2, "set")` when the latest `[[grid]]` is the third."""
    out: list[str | int] = []
    for part in path:
        out.append(part)
        key = tuple(p for p in out if isinstance(p, str))
        if key in arrays:
            out.append(arrays[key])
    return tuple(out)


def _common(a: Sequence[str | int], b: Sequence[str | int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
