"""Running pass pipelines with fsedpc's error reporting (shared by `opt` and `compile`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from .errors import FsedpError
from .ir import verify_module


def run_passes(ctx: Context, module: ModuleOp, passes: Sequence[ModulePass], *, text: str | None = None,
               verify_each: bool = True,
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
    return timings
