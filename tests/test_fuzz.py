"""The mutation fuzz suite in `make test` (issue 14): a few hundred seeded malformed inputs of every
format through the commands that read them. Each must end in exit 0 (only if it may still be
valid), 2 or 3 naming the file (3, a deadlock report, for the deadlock kind), never a traceback or
a hang, and leave no output behind on failure.
`make fuzz` runs thousands (tests/fuzz.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz  # noqa: E402

#: cases per format in `make test` (14 formats: 336 cases); FSEDPC_FUZZ_PER_KIND overrides.
PER_KIND = int(os.environ.get("FSEDPC_FUZZ_PER_KIND", "24"))
CHUNKS = 2


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fuzz.corpus(tmp_path_factory.mktemp("fuzz") / "seeds")
    fuzz.preimport()
    return root


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("kind", fuzz.KINDS)
def test_fuzz(kind: str, chunk: int, seeds: Path, tmp_path: Path) -> None:
    """Every case of one format (one chunk of them): no traceback, hang, accepted-invalid input,
    unlocated error or partial output."""
    n = PER_KIND // CHUNKS
    findings = []
    for i in range(n):
        import random

        case = fuzz.make_case(random.Random(f"test:{kind}:{chunk}:{i}"), kind, seeds)
        for outcome in fuzz.run_case(case, seeds, tmp_path / "work", timeout=30.0):
            if outcome.problems:
                findings.append(fuzz.describe(case, outcome))
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("kind", fuzz.KINDS)
def test_seeds_are_accepted(kind: str, seeds: Path, tmp_path: Path) -> None:
    """Every command accepts the unmutated seed, so the mutations reach past the first check."""
    for outcome in fuzz.run_case(fuzz.seed_case(kind, seeds), seeds, tmp_path / "work"):
        assert outcome.code == 0 and not outcome.problems, (outcome.argv, outcome.err)
