"""Running pass pipelines with fsedpc's error reporting (shared by `opt` and `compile`).

Verifying the whole module after every pass costs as much as the passes on big models, so
`compile` verifies once, after the last pass, unless asked (`--verify-each`, or the environment
variable FSEDPC_VERIFY_EACH=1, which the test suite sets); `opt` verifies after every pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir.modules import verify_module


def verify_each_default() -> bool:
    """Whether `compile` verifies after every pass when not told (FSEDPC_VERIFY_EACH=1: yes)."""
    return os.environ.get("FSEDPC_VERIFY_EACH", "") not in ("", "0")


def run_passes(ctx: Context, module: ModuleOp, passes: Sequence[ModulePass], *, text: str | None = None,
               verify_each: bool = True, verify_at_end: bool = True,
               before: Callable[[ModulePass, ModuleOp], None] | None = None,
               after: Callable[[ModulePass, ModuleOp], None] | None = None) -> list[tuple[str, float]]:
    """Apply `passes` in order; errors name the pass (and the op's location when verifying).
    Returns (pass name, seconds) per pass."""
    timings: list[tuple[str, float]] = []
    for p in passes:
        if before is not None:
            before(p, module)
        start = time.perf_counter()
        try:
            p.apply(ctx, module)
        except FsedpError as err:
            err.message = f"in pass '{p.name}': {err.message}"
            raise
        timings.append((p.name, time.perf_counter() - start))
        if verify_each:
            try:
                verify_module(module, text)
            except FsedpError as err:
                err.message = f"verification failed after pass '{p.name}': {err.message}"
                raise
        if after is not None:
            after(p, module)
    if verify_at_end and not verify_each and passes:
        try:
            verify_module(module, text)
        except FsedpError as err:
            err.message = f"verification failed after the pipeline: {err.message}"
            raise
    return timings
