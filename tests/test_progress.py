"""Progress of long runs (issue 14 item 5): a bar on a terminal, a one-line status every
FSEDPC_STATUS_EVERY seconds on stderr otherwise, nothing for short runs; stdout never changes."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from fsedp_compiler.progress import STATUS_ENV, RunProgress, status_every

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "examples" / "models" / "tiny-moe.mlir")
TRACE = str(REPO / "examples" / "traces" / "tiny-moe-4c.npz")


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=120, color_system=None), buf


def test_status_lines_off_a_terminal() -> None:
    console, buf = _console(False)
    with RunProgress("bench", total=3, unit="run", every=0.0, console=console) as p:
        p.begin("fsedp @ 16 tokens")
        p.begin("ep @ 16 tokens")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("fsedpc bench: 0 of 3 runs done (0%), ") and lines[0].endswith("; now: fsedp @ 16 tokens")
    assert lines[1].startswith("fsedpc bench: 1 of 3 runs done (33%), ") and lines[1].endswith("; now: ep @ 16 tokens")
    assert lines[-1].startswith("fsedpc bench: 3 of 3 runs done (100%), ")


def test_a_short_run_prints_nothing() -> None:
    for terminal in (False, True):
        console, buf = _console(terminal)
        with RunProgress("compile", total=4, unit="stage", every=10.0, delay=10.0, console=console) as p:
            for i in range(4):
                p.begin(f"pass {i}")
        assert buf.getvalue().strip() == "", terminal


def test_a_long_unit_still_reports() -> None:
    """The status also comes while one unit runs (no update meanwhile): nothing looks hung."""
    import time

    console, buf = _console(False)
    with RunProgress("crosscheck", total=1, unit="instance", every=0.06, console=console) as p:
        p.update(0, label="solving instance 0")
        time.sleep(0.5)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 3 and all(ln.endswith("; now: solving instance 0") for ln in lines[:-1])


def test_a_bar_on_a_terminal() -> None:
    console, buf = _console(True)
    with RunProgress("bench", total=2, unit="run", delay=0.0, console=console) as p:
        p.begin("fsedp @ 16 tokens")
        p.begin("ep @ 16 tokens")
    out = buf.getvalue()
    assert "fsedpc bench" in out and "runs" in out and "runs done" not in out


def test_an_interrupted_run_prints_no_final_line() -> None:
    console, buf = _console(False)
    with pytest.raises(KeyboardInterrupt):
        with RunProgress("bench", total=2, unit="run", every=1e9, console=console) as p:
            p.begin("fsedp")
            raise KeyboardInterrupt
    assert buf.getvalue() == ""


def test_the_period_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATUS_ENV, "0.5")
    assert status_every() == 0.5
    for bad in ("x", "-1", "nan", ""):
        monkeypatch.setenv(STATUS_ENV, bad)
        assert status_every() == 10.0


def _status(err: str, command: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(f"fsedpc {command}: ")]


COMMANDS = {
    "compile": lambda tmp: ["compile", TINY, "--target", "paper-2x2", "--trace", TRACE, "-o", str(tmp / "p")],
    "bench": lambda tmp: ["bench", TINY, "--target", "paper-2x2", "--strategies", "fsedp,ep", "--tokens", "8",
                          "--steps", "1", "--moe-layers", "1", "--json", "-"],
    "crosscheck": lambda tmp: ["crosscheck", TINY, "--target", "paper-2x2", "--random", "2", "--work-limit", "0.05"],
    "simulate": lambda tmp: ["simulate", str(tmp / "prog"), "--functional", "--metrics", "-"],
}
UNIT = {"compile": "stage", "bench": "run", "crosscheck": "instance", "simulate": "phase"}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_print_status_lines_off_a_terminal(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    command: str) -> None:
    """Each long-running command, in-process with stderr not a terminal: with a tiny period the
    status lines appear on stderr (ending at 100%); stdout is what it is without them."""
    if command == "simulate":
        assert fsedpc("compile", TINY, "--target", "paper-2x2", "--trace", TRACE, "-o", str(tmp_path / "prog")).code == 0
    argv = COMMANDS[command](tmp_path)
    monkeypatch.delenv(STATUS_ENV, raising=False)
    quiet = fsedpc(*argv)
    assert quiet.code == 0, quiet.err
    assert _status(quiet.err, command) == []  # a short run at the default period: no status at all
    monkeypatch.setenv(STATUS_ENV, "0")
    loud = fsedpc(*argv)
    assert loud.code == 0, loud.err
    lines = _status(loud.err, command)
    assert len(lines) >= 2, loud.err
    assert re.match(rf"fsedpc {command}: (\d+) of \1 {UNIT[command]}s done \(100%\), \d+ s$", lines[-1]), lines
    assert not _status(loud.out, command)
    if command == "crosscheck":  # solver seconds vary run to run: the same table rows otherwise
        assert len(loud.out.splitlines()) == len(quiet.out.splitlines())
    else:
        assert loud.out == quiet.out
