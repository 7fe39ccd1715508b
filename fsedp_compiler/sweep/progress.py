"""Sweep progress: a rich bar (points done, failures, rate, ETA) on a terminal, a status line every
few seconds otherwise (logs of batch jobs and CI stay readable)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .points import human_duration


class SweepProgress:
    """Counts finished and failed points; draws itself on `console`."""

    def __init__(self, console: Console, total: int, label: str = "sweep", every: float = 10.0) -> None:
        self.console, self.total, self.label, self.every = console, total, label, every
        self.done = self.failed = 0
        self.start = time.monotonic()
        self._last = self.start
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[red]{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, failed=0, rate="")
        return self

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed, rate=f"{self.rate():.1f} points/min")
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.console.print(self.status())

    def rate(self) -> float:
        """Points per minute so far."""
        return self.done / max(time.monotonic() - self.start, 1e-9) * 60

    def status(self) -> str:
        eta = (self.total - self.done) / self.rate() * 60 if self.done else float("nan")
        return (f"{self.label}: {self.done}/{self.total} points, {self.failed} failed, {self.rate():.1f} points/min, "
                f"elapsed {human_duration(time.monotonic() - self.start)}, ETA {human_duration(eta)}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
