"""One point's row, computed where the executor runs it (a pool process or a Ray worker).

The row has every field of an `fsedpc bench --json` row (the ratios, which relate two points, are
left to the report), or the point's error: a bad input (`FsedpError`, final) or a crash (any other
exception, tried again on the next run). Timings and the host are recorded beside it.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.sweep.points import Point, code_fingerprint

#: Row fields that vary from run to run (left out when two runs are compared).
TIMING_KEYS = ("seconds", "host", "code")


def run_point(point: Point) -> dict[str, Any]:
    """The bench fields of `point` plus `status`, `error`, `error_kind`, `seconds`, `host`, `code`."""
    from fsedp_compiler.bench.runner import ROW_KEYS, BenchConfig, run_point as bench_point
    from fsedp_compiler.files.fileio import atomic_write_bytes, atomic_write_text

    start = time.perf_counter()
    out: dict[str, Any] = {"status": "ok", "error": None, "error_kind": None}
    work = ""
    try:
        with tempfile.TemporaryDirectory(prefix="fsedpc-sweep-") as work:
            target = os.path.join(work, "target.toml")
            atomic_write_text(target, point.target_toml)
            trace = None
            if point.trace is not None:
                trace = os.path.join(work, "trace.npz")
                atomic_write_bytes(trace, point.trace)
            cfg = BenchConfig(model=point.model, target=target, tokens=(point.tokens,), strategies=(point.strategy,),
                              steps=point.steps, trace=trace, skew=point.skew, locality=point.locality, seed=point.seed,
                              buffers=point.buffers, shards_per_chiplet=point.shards_per_chiplet,
                              functional=point.functional, hydra_skip_single=point.hydra_skip_single)
            row = bench_point(cfg, point.tokens, point.strategy, work)
        out.update({k: row.get(k) for k in ROW_KEYS})
    except FsedpError as err:
        out.update(status="error", error_kind="input", error=_scrub(str(err), work))
    except Exception as err:  # noqa: BLE001 - a crash of one point must not stop the sweep
        tail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-3:]).strip()
        out.update(status="error", error_kind="crash", error=_scrub(f"{type(err).__name__}: {err}\n{tail}", work))
    out.update(seconds=round(time.perf_counter() - start, 3), host=socket.gethostname(), code=code_fingerprint())
    return out


def crash_result(message: str) -> dict[str, Any]:
    """The result of a point whose worker died (out of memory, killed, lost node): tried again later."""
    return {"status": "error", "error_kind": "crash", "error": message, "seconds": None, "host": None, "code": None}


def _scrub(message: str, work: str) -> str:
    """Messages name files by what they are, not by the worker's temporary directory."""
    return message.replace(work + os.sep, "") if work else message
