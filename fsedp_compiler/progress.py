"""Progress of a long command: a rich bar on a terminal, a one-line status now and then otherwise.

`bench`, `compile`, `crosscheck` and `simulate` can run for minutes on big models; none may look
hung. On a terminal (stderr) a transient bar appears once a run has taken `BAR_DELAY` seconds;
when stderr is a log or a pipe, a line `fsedpc CMD: i of N UNITs done (P%), T s[; now: what]` is printed
every `FSEDPC_STATUS_EVERY` seconds (default 10), also while one unit of work is still running,
and a last one when the command ends, if any was printed. A run shorter than that prints nothing,
so outputs and logs of short runs do not change. Everything goes to stderr: stdout stays the
command's own output.

    with RunProgress("bench", total=runs, unit="run") as progress:
        for label in work:
            progress.begin(label)   # the previous unit is done, `label` starts
            ...
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

STATUS_ENV = "FSEDPC_STATUS_EVERY"
"""Seconds between the status lines printed when stderr is not a terminal (default 10)."""
DEFAULT_EVERY = 10.0
BAR_DELAY = 1.0
"""Seconds before the bar appears on a terminal (shorter runs show none)."""


def status_every() -> float:
    """The status-line period: FSEDPC_STATUS_EVERY seconds when set to a number >= 0, else 10."""
    try:
        value = float(os.environ.get(STATUS_ENV, ""))
    except ValueError:
        return DEFAULT_EVERY
    return value if value >= 0 and value == value else DEFAULT_EVERY


class RunProgress:
    """Counts the units of work of one command and shows them (see the module docstring)."""

    def __init__(self, command: str, total: int | None = None, unit: str = "step", *, every: float | None = None,
                 console: Any = None, delay: float = BAR_DELAY) -> None:
        from fsedp_compiler.console import make_console

        self.command, self.total, self.unit = command, total, unit
        self.every = status_every() if every is None else every
        self.delay = delay
        self.console = console if console is not None else make_console(stderr=True)
        self.terminal = bool(self.console.is_terminal)
        self.done = 0
        self.label = ""
        self._begun = False
        self.start = self._last = time.perf_counter()
        self._printed: tuple | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None

    # --- the context
    def __enter__(self) -> RunProgress:
        self._ticker = threading.Thread(target=self._tick, name=f"fsedpc-{self.command}-status", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if exc_type is None:  # a command that returned finished its work
                self.done, self.label = self.total if self.total is not None else self.done, ""
            if self._bar is not None:
                self._bar.__exit__(exc_type, exc, tb)
            elif not self.terminal and exc_type is None and self._printed is not None \
                    and self._printed != self._state():
                self._print()

    # --- reporting work
    def update(self, done: int | None = None, total: int | None = None, label: str | None = None) -> None:
        """Set what is done (and the total, and what runs now); shows it when due."""
        with self._lock:
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if label is not None:
                self.label = label
            self._show()

    def advance(self, n: int = 1, label: str | None = None) -> None:
        """`n` more units are done."""
        self.update(self.done + n, label=label)

    def begin(self, label: str) -> None:
        """A new unit starts (the one begun before it is done)."""
        with self._lock:
            done = self.done + 1 if self._begun else self.done
            self._begun = True
        self.update(done, label=label)

    # --- display
    def status(self) -> str:
        """The one-line status: `fsedpc CMD: i of N UNITs done (P%), T s; now: what`."""
        elapsed = time.perf_counter() - self.start
        if self.total:
            count = f"{self.done} of {self.total} {self.unit}s done ({self.done / self.total:.0%}), "
        else:
            count = f"{self.done} {self.unit}s done, " if self.done else ""
        return f"fsedpc {self.command}: {count}{elapsed:.0f} s" + (f"; now: {self.label}" if self.label else "")

    def _state(self) -> tuple:
        return (self.done, self.total, self.label)

    def _print(self) -> None:
        self.console.print(self.status(), highlight=False, markup=False, soft_wrap=True)
        self._printed = self._state()
        self._last = time.perf_counter()

    def _start_bar(self) -> None:
        """The terminal's bar, started once the run has lasted `delay` (a short run draws nothing)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(f"fsedpc {self.command}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn(self.unit + "s"), TimeElapsedColumn(), TextColumn("{task.description}"),
                             console=self.console, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=self.total)

    def _show(self) -> None:
        now = time.perf_counter()
        if self.terminal:
            if self._bar is None and now - self.start >= self.delay and not self._stop.is_set():
                self._start_bar()
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, total=self.total, description=self.label)
        elif now - self._last >= self.every:
            self._print()

    def _tick(self) -> None:
        """Shows the state while a unit runs long (nothing would call `update` meanwhile)."""
        period = max(min(self.every, self.delay) if self.terminal else self.every, 0.05)
        while not self._stop.wait(period):
            with self._lock:
                self._show()
