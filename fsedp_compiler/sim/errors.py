"""How the machine reports a wrong program: a located error (exit 2) or a deadlock (exit 3)."""

from __future__ import annotations

from fsedp_compiler.errors import FsedpError


class ProgramError(FsedpError):
    """An instruction the machine cannot execute, located at its program file and record."""


class DeadlockError(FsedpError):
    """No engine can make progress while work remains: reported with who waits on what."""

    exit_code = 3
