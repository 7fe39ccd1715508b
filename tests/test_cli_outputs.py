"""Every command's outputs go through fileio: `-` is stdout (the human summary moves to stderr),
FIFOs and symlinks are honoured, write errors are located (exit 2) and leave nothing, outputs
are checked before the work, bench writes nothing when one output fails; `-` is stdin for inputs.
All files live in tmp_path (FIFOs are made there and read by a thread)."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from fsedp_compiler.files import fileio

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
HF = REPO / "examples" / "hf" / "mixtral-8x7b.json"
BENCH = ("bench", str(MODEL), "--strategies", "fsedp", "--tokens", "16", "--steps", "1", "--moe-layers", "1")


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def _files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as fifo:
            got.append(fifo.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled dynamic tiny-moe program (shared: simulate only reads it)."""
    from fsedp_compiler.cli import main

    out = tmp_path_factory.mktemp("prog") / "tiny"
    assert main(["compile", str(MODEL), "--target", "paper-2x2", "-o", str(out)]) == 0
    return out


# --------------------------------------------------------------------------- '-' is stdout


def test_opt_and_import_hf_dash_is_stdout_and_no_file_named_dash(fsedpc, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = fsedpc("opt", str(MODEL), "-o", "-")
    assert r.code == 0 and r.out == MODEL.read_text()
    r = fsedpc("import-hf", str(HF), "--layers", "1", "-o", "-")
    assert r.code == 0 and r.out.startswith('builtin.module attributes {moe.model = "mixtral-8x7b"')
    assert _files(tmp_path) == []


def test_simulate_metrics_dash_is_pure_json_on_stdout(fsedpc, program: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = fsedpc("simulate", str(program), "--trace", str(REPO / "examples/traces/tiny-moe-4c.npz"), "--metrics", "-")
    assert r.code == 0, r.err
    assert json.loads(r.out)["model"] == "tiny-moe" and "makespan" in r.err  # the table went to stderr
    r = fsedpc("simulate", str(program), "--metrics", "-", "--timeline", "-")
    assert r.code == 2 and "<stdout>: error: only one output can go to standard output" in r.err
    assert _files(tmp_path) == []


def test_bench_json_dash_is_pure_json_on_stdout(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = fsedpc(*BENCH, "--json", "-", "--csv", "rows.csv")
    assert r.code == 0, r.err
    assert json.loads(r.out)["format"] == "fsedpc-bench" and "step time" in r.err
    assert _files(tmp_path) == ["rows.csv"]


def test_crosscheck_json_dash(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = fsedpc("crosscheck", str(MODEL), "--target", "paper-2x2", "--random", "1", "--work-limit", "0.05",
               "--json", "-")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)["instances"]) == 1 and "heuristic vs CP-SAT" in r.err
    assert _files(tmp_path) == []


def test_trace_synth_dash_gives_the_same_bytes_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from fsedp_compiler.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["trace", "synth", str(MODEL), "--tokens", "4", "--steps", "2", "--chiplets", "4", "--seed", "3"]
    assert main([*args, "-o", "t.npz"]) == 0
    capsysbinary.readouterr()
    assert main([*args, "-o", "-"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == (tmp_path / "t.npz").read_bytes()
    assert b"wrote <stdout>: 4 MoE layers" in captured.err
    assert _files(tmp_path) == ["t.npz"]


def test_compile_to_stdout_is_refused(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = fsedpc("compile", str(MODEL), "-o", "-")
    assert r.code == 2 and "-o: a program is a directory and cannot go to standard output" in r.err
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- '-' is stdin


def test_mlir_inputs_read_stdin(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MODEL.read_text()
    _stdin(monkeypatch, text)
    r = fsedpc("opt", "-", "-o", str(tmp_path / "o.mlir"))
    assert r.code == 0 and (tmp_path / "o.mlir").read_text() == text
    _stdin(monkeypatch, text)
    r = fsedpc("inspect", "-", "--json")
    assert r.code == 0 and json.loads(r.out)["name"] == "tiny-moe"
    _stdin(monkeypatch, text)
    r = fsedpc("compile", "-", "--target", "paper-2x2", "-o", str(tmp_path / "prog"))
    assert r.code == 0, r.err
    assert (tmp_path / "prog" / "program.json").exists()


def test_stdin_errors_name_stdin(fsedpc, monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, 'builtin.module attributes {moe.model = "tiny, moe.num_layers = 2 : i64} {\n}\n')
    r = fsedpc("inspect", "-")
    assert r.code == 2 and r.err.startswith("fsedpc: <stdin>:1:40: error: string literal is not closed")
    _stdin(monkeypatch, "builtin.module {\n  moe.bogus\n}\n")
    r = fsedpc("opt")  # the input defaults to '-'
    assert r.code == 2 and r.err.startswith("fsedpc: <stdin>:3:1: error: Operation moe.bogus is not registered")


def test_import_hf_reads_stdin(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = json.loads(HF.read_text())
    cfg.pop("_name_or_path", None)
    _stdin(monkeypatch, json.dumps(cfg))
    r = fsedpc("import-hf", "-", "--layers", "1", "--name", "piped", "-o", str(tmp_path / "m.mlir"))
    assert r.code == 0, r.err
    assert 'moe.model = "piped"' in (tmp_path / "m.mlir").read_text()
    _stdin(monkeypatch, json.dumps(cfg))
    r = fsedpc("import-hf", "-", "--layers", "1")
    assert r.code == 2 and "<stdin>: error: --name: " in r.err and "standard input has no file name" in r.err
    _stdin(monkeypatch, "{,}")
    r = fsedpc("import-hf", "-")
    assert r.code == 2 and r.err.startswith("fsedpc: <stdin>:1:2: error: invalid JSON")


# --------------------------------------------------------------------------- special files, links, modes


def test_outputs_to_a_fifo_are_written_in_place(fsedpc, program: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args in (("opt", str(MODEL), "-o", str(fifo)),
                 ("simulate", str(program), "--trace", str(REPO / "examples/traces/tiny-moe-4c.npz"),
                  "--timeline", str(fifo))):
        thread, got = _read_fifo(fifo)
        r = fsedpc(*args)
        thread.join(timeout=10)
        assert r.code == 0, r.err
        assert got and got[0]
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(got[0])["traceEvents"]
    assert _files(tmp_path) == ["fifo"]


def test_output_through_a_symlink_updates_its_target(fsedpc, tmp_path: Path) -> None:
    real = tmp_path / "real.mlir"
    real.write_text("old")
    (tmp_path / "link.mlir").symlink_to("real.mlir")
    r = fsedpc("import-hf", str(HF), "--layers", "1", "-o", str(tmp_path / "link.mlir"))
    assert r.code == 0, r.err
    assert (tmp_path / "link.mlir").is_symlink() and "mixtral-8x7b" in real.read_text()
    (tmp_path / "dangling").symlink_to("nowhere.mlir")
    r = fsedpc("opt", str(MODEL), "-o", str(tmp_path / "dangling"))
    assert r.code == 2 and "is a symbolic link to a missing file (nowhere.mlir)" in r.err
    assert _files(tmp_path) == ["dangling", "link.mlir", "real.mlir"]


def test_outputs_get_the_umask_permissions(fsedpc, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert fsedpc("import-hf", str(HF), "--layers", "1", "-o", str(tmp_path / "m.mlir")).code == 0
        assert fsedpc("opt", str(MODEL), "-o", str(tmp_path / "o.mlir")).code == 0
    finally:
        os.umask(old)
    assert {stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in ("m.mlir", "o.mlir")} == {0o640}


# --------------------------------------------------------------------------- write errors


def _full_disk(monkeypatch: pytest.MonkeyPatch, under: Path, after: int = 0) -> None:
    """fsync of files under `under` reports ENOSPC (as a full disk does for delayed allocation)
    from the (after+1)-th such file on; elsewhere (bench's work directory) the disk is fine."""
    real_fsync, seen = os.fsync, [0]

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{under}/"):
            seen[0] += 1
            if seen[0] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)


@pytest.mark.parametrize("make", [
    lambda out, prog: ("opt", str(MODEL), "-o", out),
    lambda out, prog: ("import-hf", str(HF), "--layers", "1", "-o", out),
    lambda out, prog: ("trace", "synth", str(MODEL), "--tokens", "2", "--steps", "1", "--chiplets", "4",
                       "--seed", "1", "-o", out),
    lambda out, prog: ("simulate", str(prog), "--trace", str(REPO / "examples/traces/tiny-moe-4c.npz"),
                       "--metrics", out),
    lambda out, prog: ("simulate", str(prog), "--trace", str(REPO / "examples/traces/tiny-moe-4c.npz"),
                       "--timeline", out),
    lambda out, prog: (*BENCH, "--csv", out),
], ids=["opt", "import-hf", "trace-synth", "simulate-metrics", "simulate-timeline", "bench-csv"])
def test_full_disk_is_a_located_error_and_leaves_nothing(fsedpc, program: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, make) -> None:
    out = tmp_path / "out"
    _full_disk(monkeypatch, tmp_path)
    r = fsedpc(*make(str(out), program))
    assert r.code == 2
    assert r.err.splitlines()[-1] == f"fsedpc: {out}: error: cannot write: No space left on device"
    assert _files(tmp_path) == []


def test_missing_output_directory_fails_before_the_work(fsedpc, program: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import fsedp_compiler.sim.run as sim_run

    def no_run(*args, **kwargs):
        raise AssertionError("simulated although the output cannot be written")

    monkeypatch.setattr(sim_run, "simulate", no_run)
    bad = tmp_path / "no" / "m.json"
    for args in (("simulate", str(program), "--metrics", str(bad)),
                 ("crosscheck", str(MODEL), "--target", "paper-2x2", "--random", "1", "--json", str(bad)),
                 ("opt", str(MODEL), "-o", str(bad)),
                 (*BENCH, "--json", str(tmp_path / "j.json"), "--plot", str(bad))):
        r = fsedpc(*args)
        assert r.code == 2 and f"{bad}: error: output directory does not exist" in r.err, args
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- all or nothing


def test_bench_writes_nothing_when_the_plot_fails(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsedp_compiler.bench.plots as plots
    from fsedp_compiler.errors import FsedpError

    def broken(report: dict) -> bytes:
        raise FsedpError("cannot draw the figure", field="--plot")

    monkeypatch.setattr(plots, "render_report", broken)
    (tmp_path / "old.json").write_text("earlier run")
    r = fsedpc(*BENCH, "--json", str(tmp_path / "old.json"), "--csv", str(tmp_path / "rows.csv"),
               "--plot", str(tmp_path / "fig.png"))
    assert r.code == 2 and "--plot: cannot draw the figure" in r.err
    assert _files(tmp_path) == ["old.json"] and (tmp_path / "old.json").read_text() == "earlier run"


def test_bench_writes_nothing_when_one_output_hits_a_full_disk(fsedpc, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk(monkeypatch, tmp_path, after=1)  # the JSON is staged fine, the CSV hits a full disk
    r = fsedpc(*BENCH, "--json", str(tmp_path / "j.json"), "--csv", str(tmp_path / "rows.csv"))
    assert r.code == 2 and f"{tmp_path / 'rows.csv'}: error: cannot write: No space left on device" in r.err
    assert _files(tmp_path) == []
