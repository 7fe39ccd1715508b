"""Shared pytest fixtures: paths of the repository and a runner for the `fsedpc` CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def fsedpc(capsys: pytest.CaptureFixture[str]):
    """Run `fsedpc ARGS...` in-process; returns exit code, stdout and stderr."""
    from fsedp_compiler.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
