"""Atomic output files: written to a temporary file beside the target, then renamed.

A failed run therefore never leaves a half-written output behind (DESIGN.md §6).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import FsedpError


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The directory an output file goes into; an error when it is missing or `path` is one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FsedpError(f"output directory does not exist: {directory}", path=str(target))
    if target.is_dir():
        raise FsedpError("is a directory; give a file name", path=str(target))
    return directory


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    target = Path(path)
    directory = check_output_path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """Read a UTF-8 input file, turning OS errors into one clear message."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FsedpError(f"{what} not found", path=str(path)) from None
    except IsADirectoryError:
        raise FsedpError(f"expected a {what}, got a directory", path=str(path)) from None
    except UnicodeDecodeError as err:
        raise FsedpError(f"{what} is not UTF-8 text ({err.reason})", path=str(path)) from None
    except OSError as err:
        raise FsedpError(f"cannot read {what}: {err.strerror}", path=str(path)) from None
