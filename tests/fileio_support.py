"""Helpers shared by the fileio tests (test_fileio.py, test_fileio_dirs.py)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path


def mode_of(path: Path) -> int:
    """The permission bits of `path` itself (a link's own, not its target's)."""
    return stat.S_IMODE(os.lstat(path).st_mode)


def hidden(directory: Path) -> list[str]:
    """Temporary files or directories left behind (they are hidden: a leading dot)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


class FifoReader:
    """A thread that reads a FIFO to its end (opening a FIFO for writing waits for a reader)."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()

    def _read(self, path: Path) -> None:
        with open(path, "rb") as fifo:
            self.data = fifo.read()

    def result(self) -> bytes:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the FIFO was never written and closed"
        return self.data
