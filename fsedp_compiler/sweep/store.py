"""The results store: a directory with `rows.jsonl`, one JSON object a line, only ever appended.

JSONL rather than Parquet (README, "Why JSONL"): a row is durable once its line is written and
fsync'ed, a crash tears at most the last line (dropped on the next open), it needs no dependency
and `grep`, `jq` and `pandas.read_json(lines=True)` read it. A rerun skips the points whose latest
row is a success or a bad input; crashed points are tried again. `spec.toml` keeps a copy of the
last spec run into the store; `.lock` keeps two sweeps from writing one store at once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import AppendLog, atomic_write_text, read_text

ROWS = "rows.jsonl"
SPEC = "spec.toml"
LOCK = ".lock"


class Store:
    """An open store: appending rows, under its lock."""

    def __init__(self, path: Path, log: AppendLog) -> None:
        self.path = path
        self._log = log

    def append(self, row: dict[str, Any]) -> None:
        self._log.append(json.dumps(row, ensure_ascii=False))

    def save_spec(self, text: str) -> None:
        atomic_write_text(self.path / SPEC, text)


@contextmanager
def open_store(path: str) -> Iterator[Store]:
    """Create or reopen the store directory for writing; an error if it is something else or in use."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise FsedpError("is not a directory: a store is a directory (rows.jsonl inside)", path=path)
    if root.is_dir() and any(root.iterdir()) and not (root / ROWS).exists():
        raise FsedpError(f"is a non-empty directory without {ROWS}, so not a sweep store; it is left as it is: "
                         "give a new or empty directory", path=path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise FsedpError(f"cannot create the store: {err.strerror or err}", path=path) from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FsedpError("another sweep is writing to this store; wait for it or give another -o",
                             path=path) from None
        with AppendLog(root / ROWS) as log:
            yield Store(root, log)
    finally:
        os.close(lock)  # releases the lock


def read_rows(path: str) -> list[dict[str, Any]]:
    """Every row of the store in the order written (a torn last line, from a crash, is skipped)."""
    root = Path(path)
    if not root.is_dir():
        raise FsedpError("no sweep store here (expected a directory with rows.jsonl)", path=path)
    if not (root / ROWS).exists():
        return []
    name = str(root / ROWS)
    text = read_text(name, "store")
    lines = text.split("\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # the last line, still being written or torn by a crash
                break
            raise FsedpError(f"not a JSON row: {err.msg}", path=name, line=number, col=err.colno) from None
        if not isinstance(row, dict) or "key" not in row or "status" not in row:
            raise FsedpError("not a sweep row (no key or status)", path=name, line=number)
        rows.append(row)
    return rows


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each point key (a point tried again after a crash has several)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.pop(row["key"], None)
        out[row["key"]] = row
    return out


def is_final(row: dict[str, Any]) -> bool:
    """Done for good: a success, or an error of the input (the same inputs fail the same way)."""
    return row["status"] == "ok" or row.get("error_kind") == "input"
