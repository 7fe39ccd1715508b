"""Generic mutations of the fuzz harness (tests/fuzz.py, cases in fuzz_cases.py): blind byte and
line edits, type and range edits of a structured value, and the JSON/TOML dumpers that write the
mutated structures back (deep nesting included)."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any, Callable

ANY, INVALID, DEADLOCK = "any", "invalid", "deadlock"
"""Validity of a case: may be valid (exit 0 allowed), invalid (exit 2), a deadlock (exit 3 required)."""


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def bytes_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """A blind edit of the bytes or lines (its validity is unknown)."""
    kind = rng.choice(["flip", "flip", "truncate", "delete-line", "dup-line", "swap-lines", "garbage", "zero"])
    if not data:
        return "empty", data
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 8])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "garbage":
        i = rng.randrange(len(data))
        return kind, data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16))) + data[i:]
    if kind == "zero":
        i = rng.randrange(len(data))
        return kind, data[:i] + b"\0" * rng.randrange(1, 64) + data[i + 64:]
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if kind == "delete-line":
        del lines[i]
    elif kind == "dup-line":
        lines.insert(i, lines[j])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return kind, b"\n".join(lines)


HUGE_INT = 10**30
DIGITS = "9" * 5000


def value_mutation(rng: random.Random, value: Any) -> tuple[str, Any, str]:
    """(name, new value, ANY or INVALID) for one numeric, string or boolean field."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    options: list[tuple[str, Any, str]] = [
        ("string", "bogus", INVALID), ("list", [1, 2], INVALID), ("table", {"a": 1}, INVALID),
        ("null", None, INVALID),
    ]
    if numeric:
        options += [("negative", -abs(value) - 1, INVALID), ("nan", math.nan, INVALID), ("inf", math.inf, INVALID),
                    ("-inf", -math.inf, INVALID), ("huge-int", HUGE_INT, INVALID), ("huge-float", 1e308, ANY),
                    ("zero", 0 if isinstance(value, int) else 0.0, ANY), ("big", 10**9, ANY),
                    ("tiny", 1e-300, INVALID if isinstance(value, int) else ANY),
                    ("other", value + 1 if isinstance(value, int) else value * 1.5, ANY),
                    ("bool", True, INVALID)]
        if isinstance(value, int):
            options.append(("fraction", value + 0.5, INVALID))
    elif isinstance(value, bool):
        options = [("flip", not value, ANY), ("string", "yes", INVALID), ("int", 2, INVALID)]
    elif isinstance(value, str):
        options[0] = ("string", "bogus", ANY)
        options += [("other-string", value + "x", ANY), ("empty", "", ANY), ("number", 7, INVALID)]
    return rng.choice(options)


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    """Paths of the scalar leaves of a JSON-like object."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, path + (k,))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _leaves(v, path + (i,))] or [path]
    return [path]


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def set_at(obj: Any, path: tuple, value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


def structured_mutation(rng: random.Random, obj: Any, critical: Callable[[tuple], bool],
                        required: Callable[[tuple], bool]) -> tuple[str, Any, str]:
    """Mutate a copy of a JSON-like object: a field's type or range, a removed or unknown field,
    deep nesting or an endless number. `critical(path)`: an invalid value there must be refused."""
    obj = json.loads(json.dumps(obj))
    leaves = [p for p in _leaves(obj) if p]
    path = rng.choice(leaves)
    kind = rng.random()
    if kind < 0.1:  # remove a field
        parent = _get(obj, path[:-1])
        if isinstance(parent, dict):
            del parent[path[-1]]
            return f"remove {_name(path)}", obj, INVALID if required(path) else ANY
    if kind < 0.18 and isinstance(_get(obj, path[:-1]), dict):
        _get(obj, path[:-1])["unknown_field_x"] = 1
        return f"unknown field beside {_name(path)}", obj, ANY
    if kind < 0.24:
        deep: Any = 1
        for _ in range(rng.choice([50, 100_000])):
            deep = [deep]
        set_at(obj, path, deep)
        return f"deep {_name(path)}", obj, INVALID if critical(path) else ANY
    name, value, validity = value_mutation(rng, _get(obj, path))
    if name == "null" and not required(path):  # null often means "the default"
        validity = ANY
    set_at(obj, path, value)
    return f"{name} {_name(path)}", obj, validity if critical(path) else ANY


def _name(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def dump_json(obj: Any, rng: random.Random) -> bytes:
    text = json.dumps(obj, indent=2, default=str, check_circular=False) if depth_ok(obj) else deep_dump(obj)
    return text.replace('"__HUGE__"', DIGITS).encode()


def depth_ok(obj: Any, depth: int = 0) -> bool:
    if depth > 200:
        return False
    if isinstance(obj, dict):
        return all(depth_ok(v, depth + 1) for v in obj.values())
    if isinstance(obj, list):
        return all(depth_ok(v, depth + 1) for v in obj)
    return True


def deep_dump(obj: Any) -> str:
    """json.dumps without recursion (for 100,000-deep nests)."""
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {deep_dump(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        depth = 0
        while isinstance(obj, list) and len(obj) == 1:
            obj, depth = obj[0], depth + 1
        if depth > 1:
            return "[" * depth + deep_dump(obj) + "]" * depth
        return "[" + ", ".join(deep_dump(v) for v in obj) + "]"
    return json.dumps(obj)


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    """A TOML value that may be invalid on purpose: nan, inf, deep arrays, null (a bad value)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return deep_dump(v) if not depth_ok(v) else "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"


def dump_toml(obj: dict) -> bytes:
    """A target-shaped document as TOML: `[chiplet]` and `[link]` as tables, the rest inline."""
    top = [f"{k} = {_toml_value(v)}" for k, v in obj.items() if not (isinstance(v, dict) and k in ("chiplet", "link"))]
    tables = [f"\n[{k}]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())
              for k, v in obj.items() if isinstance(v, dict) and k in ("chiplet", "link")]
    return ("\n".join(top) + "\n" + "\n".join(tables) + "\n").encode()


def dump_toml_inline(obj: dict) -> bytes:
    """Any JSON-like document as TOML with every table inline (`grid = [{ ... }]`), keys quoted
    when not bare."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in obj.items()).encode()
