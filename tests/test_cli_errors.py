"""The CLI's last line of defence: an unexpected exception is one line and exit 1 (tests re-raise
it through FSEDPC_DEBUG), Ctrl-C is exit 130, and neither leaves an output behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fsedp_compiler import cli

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "examples" / "models" / "tiny-moe.mlir")


def _boom(args) -> int:
    raise ZeroDivisionError("division by zero")


def test_unexpected_exception_is_one_line_naming_command_and_input(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from fsedp_compiler.commands import inspect

    monkeypatch.setattr(inspect, "run", _boom)
    monkeypatch.setenv("FSEDPC_DEBUG", "0")
    assert cli.main(["inspect", TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error in `fsedpc inspect " in err and "tiny-moe.mlir" in err
    assert "ZeroDivisionError: division by zero" in err and "report it" in err and "FSEDPC_DEBUG=1" in err


def test_tests_see_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsedp_compiler.commands import inspect

    monkeypatch.setattr(inspect, "run", _boom)
    monkeypatch.setenv("FSEDPC_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["inspect", TINY])


def test_interrupt_during_compile_exits_130_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C after chiplet_0 was written: exit 130, no OUTDIR, no hidden temporary sibling."""
    import fsedp_compiler.backends.emit as emit_mod

    real, calls = emit_mod.encode, []

    def encode(program):
        calls.append(program)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(program)

    monkeypatch.setattr(emit_mod, "encode", encode)
    out = tmp_path / "out"
    assert cli.main(["compile", TINY, "--target", "paper-2x2", "-o", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sigint_exits_130(tmp_path: Path) -> None:
    """A real SIGINT to a running `fsedpc` process: exit 130, one line, no output file."""
    import signal
    import time

    out = tmp_path / "t.npz"
    code = ("import time, fsedp_compiler.inputs.trace_synth as r; from fsedp_compiler.cli import main\n"
            "real = r.synth_trace\n"
            "def slow(*a, **k):\n    print('ready', flush=True); time.sleep(30); return real(*a, **k)\n"
            "r.synth_trace = slow\n"
            f"raise SystemExit(main(['trace', 'synth', {TINY!r}, '--tokens', '4', '--steps', '1', "
            f"'--chiplets', '2', '--seed', '1', '-o', {str(out)!r}]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_simulate_prints_status_lines_when_not_a_terminal(fsedpc, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 5: a long `simulate --functional` in a log shows a periodic one-line status."""
    out = tmp_path / "p"
    assert fsedpc("compile", TINY, "--target", "paper-2x2", "--trace",
                  str(REPO / "examples" / "traces" / "tiny-moe-4c.npz"), "-o", str(out)).code == 0
    monkeypatch.setenv("FSEDPC_STATUS_EVERY", "0")  # fsedp_compiler/progress.py
    r = fsedpc("simulate", str(out), "--functional")
    assert r.code == 0, r.err
    lines = [ln for ln in r.err.splitlines() if ln.startswith("fsedpc simulate: ")]
    assert len(lines) >= 2 and " phases done (100%)" in lines[-1], r.err


#: (command line, the function made to stop mid-run and signal readiness, the outputs it asks for)
SIGINT_CASES = {
    "compile": ("fsedp_compiler.backends.emit", "encode", 2,
                ["compile", TINY, "--target", "paper-2x2", "--trace", "{trace}", "-o", "{tmp}/out"]),
    "simulate": ("fsedp_compiler.sim.run", "run_stream_step", 2,
                 ["simulate", "{prog}", "--functional", "--metrics", "{tmp}/m.json", "--timeline", "{tmp}/t.json"]),
    "bench": ("fsedp_compiler.bench.runner", "run_one", 2,
              ["bench", TINY, "--target", "paper-2x2", "--strategies", "fsedp,ep", "--tokens", "8", "--steps", "1",
               "--moe-layers", "1", "--json", "{tmp}/b.json", "--csv", "{tmp}/b.csv"]),
}


@pytest.mark.parametrize("command", list(SIGINT_CASES))
def test_sigint_mid_run_exits_130_and_leaves_nothing(tmp_path: Path, command: str) -> None:
    """Issue 14: a real SIGINT to `fsedpc compile/simulate/bench` after some of its work is done
    (the second program encoded, the second step simulated, the second strategy run): exit 130,
    one line, no output file or directory, no temporary sibling left behind."""
    import signal

    trace = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
    inputs = tmp_path / "in"
    inputs.mkdir()
    if command == "simulate":
        assert cli.main(["compile", TINY, "--target", "paper-2x2", "--trace", str(trace),
                         "-o", str(inputs / "prog")]) == 0
    work = tmp_path / "work"
    work.mkdir()
    module, name, nth, argv = SIGINT_CASES[command]
    argv = [a.format(trace=trace, tmp=work, prog=inputs / "prog") for a in argv]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = (f"import importlib, sys, time\nfrom fsedp_compiler.cli import main\n"
            f"mod = importlib.import_module({module!r})\nreal, calls = mod.{name}, []\n"
            "def stop(*a, **k):\n    calls.append(1)\n"
            f"    if len(calls) == {nth}:\n        print('ready', flush=True); time.sleep(60)\n"
            "    return real(*a, **k)\n"
            f"mod.{name} = stop\nraise SystemExit(main({argv!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=work)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        pytest.fail(f"did not reach the middle of the run: {line!r} {proc.communicate()[1]}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "fsedpc: interrupted" and "Traceback" not in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
