"""Shared pytest fixtures: paths of the repository and a runner for the `fsedpc` CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run, so `make test` (and CI) is reproducible;
# explore new examples locally with HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# The test suite verifies the module after every pass of `compile` and `bench` (their default
# is once, at the end, for speed): a pass that breaks the IR fails a test at that pass.
os.environ.setdefault("FSEDPC_VERIFY_EACH", "1")
# An unexpected exception in `fsedpc` is one line and exit 1 for users; tests re-raise it (with its
# traceback), so a bug fails the test that hit it instead of passing as "exit code 1".
os.environ.setdefault("FSEDPC_DEBUG", "1")

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


@pytest.fixture
def umask() -> Iterator[callable]:
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)
