"""Running a sweep: the points not yet in the store go to an executor; each row is appended as it
arrives, so an interrupted sweep resumes where it stopped."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from fsedp_compiler.sweep.points import Point, code_fingerprint
from fsedp_compiler.sweep.progress import SweepProgress
from fsedp_compiler.sweep.store import is_final, latest, open_store, read_rows
from fsedp_compiler.sweep.worker import crash_result


@dataclass
class SweepResult:
    """What one run did."""

    total: int
    skipped: int
    ran: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def points_per_minute(self) -> float:
        return self.ran / self.seconds * 60 if self.seconds else 0.0


def make_row(point: Point, result: dict[str, Any]) -> dict[str, Any]:
    """A store row: key and group, status, the point's parameters, the bench fields, timings. A row
    computed by other fsedpc code than this one (a cluster node with another version) is an error."""
    if result.get("code") not in (None, code_fingerprint()):
        result = {**crash_result(f"the worker on {result.get('host')} runs other fsedpc code (fingerprint "
                                 f"{result.get('code')}, here {code_fingerprint()}): install the same version "
                                 "on every node"), "host": result.get("host"), "code": result.get("code")}
    head = {"key": point.key, "group": point.group, "status": result["status"], "error": result.get("error"),
            "error_kind": result.get("error_kind")}
    rest = {k: v for k, v in result.items() if k not in head}
    return {**head, **point.params, **rest}


def pending(points: list[Point], store_path: str) -> tuple[list[Point], int]:
    """The points still to run and how many are already done (rows of an earlier run)."""
    from pathlib import Path

    if not Path(store_path).is_dir():
        return points, 0
    rows = latest(read_rows(store_path))
    todo = [p for p in points if not (p.key in rows and is_final(rows[p.key]))]
    return todo, len(points) - len(todo)


def run_sweep(points: list[Point], store_path: str, spec_text: str, *, executor: str = "local",
              jobs: int | None = None, address: str | None = None, console: Console | None = None,
              every: float = 10.0) -> SweepResult:
    """Run the points not yet done into the store; Ctrl-C stops it with every finished row kept."""
    from fsedp_compiler.sweep.executors import default_jobs, run_local, run_ray

    console = console or Console(stderr=True)
    with open_store(store_path) as store:
        store.save_spec(spec_text)
        todo, skipped = pending(points, store_path)
        result = SweepResult(total=len(points), skipped=skipped)
        if skipped:
            console.print(f"{skipped} of {len(points)} points are already in {store_path}; running the other "
                          f"{len(todo)}")
        start = time.monotonic()
        stream = (run_ray(todo, jobs, address) if executor == "ray" else run_local(todo, jobs or default_jobs()))
        with SweepProgress(console, len(todo), sum(p.work for p in todo), every=every) as bar, closing(stream):
            for point, res in stream:
                row = make_row(point, res)
                store.append(row)
                result.ran += 1
                result.failed += row["status"] != "ok"
                result.seconds = time.monotonic() - start
                bar.advance(failed=row["status"] != "ok", work=point.work)
        result.seconds = time.monotonic() - start
    return result
