"""Sweep progress: a rich bar (points done, failures, rate, ETA) on a terminal, a status line every
few seconds otherwise (logs of batch jobs and CI stay readable). The ETA weighs the points left by
their work proxy (a 256-token point on 16 chiplets is not a 1-token point on 4)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fsedp_compiler.sweep.points import human_duration


class SweepProgress:
    """Counts finished and failed points; draws itself on `console`."""

    def __init__(self, console: Console, total: int, work: float = 0.0, label: str = "sweep",
                 every: float = 10.0) -> None:
        self.console, self.total, self.label, self.every = console, total, label, every
        self.done = self.failed = 0
        self.work, self.work_done = work or float(total), 0.0
        self.start = time.monotonic()
        self._bar: Progress | None = None
        self._task: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[red]{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                                 console=self.console, transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, failed=0, rate="", eta="?")
        elif self.total:
            self._ticker = threading.Thread(target=self._tick, name="sweep-status", daemon=True)
            self._ticker.start()
        return self

    def _tick(self) -> None:
        """A status line every `every` seconds, whether or not a point finished meanwhile."""
        while not self._stop.wait(self.every):
            self.console.print(self.status())

    def advance(self, failed: bool, work: float = 1.0) -> None:
        self.done += 1
        self.failed += failed
        self.work_done += work
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed, rate=f"{self.rate():.1f} points/min",
                             eta=human_duration(self.eta()))

    def eta(self) -> float:
        """Seconds left: the work left at the rate of work done so far."""
        if not self.work_done:
            return float("nan")
        return max(self.work - self.work_done, 0.0) * (time.monotonic() - self.start) / self.work_done

    def rate(self) -> float:
        """Points per minute so far."""
        return self.done / max(time.monotonic() - self.start, 1e-9) * 60

    def status(self) -> str:
        return (f"{self.label}: {self.done}/{self.total} points, {self.failed} failed, {self.rate():.1f} points/min, "
                f"elapsed {human_duration(time.monotonic() - self.start)}, ETA {human_duration(self.eta())}")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.__exit__(*exc)
