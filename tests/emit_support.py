"""Helpers shared by the streamed-emission tests (test_stream_emit.py, test_stream_baselines.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.backends.emit import emit
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec

#: four blocks, three of them MoE: small enough to compile many times, big enough to stream
SMALL_SPEC = ModelSpec("m", 4, (DenseSpec(0, 64, 64),), tuple(MoeLayerSpec(i, 32, 64, 12, 3, 0, 0) for i in (1, 2, 3)))


def traced_emit(build: Callable[[], ModuleOp], out: Path) -> tuple[int, int]:
    """(tracemalloc peak of building the module and writing it without text forms to `out`,
    instructions written)."""
    tracemalloc.start()
    try:
        manifest = emit(build(), str(out), text=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, sum(p["instructions"] for p in manifest["programs"])
