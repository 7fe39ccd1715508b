"""fileio's directory outputs (a program directory): built aside and moved in, an earlier output
replaced with its stale files gone, failures keep or leave nothing, a user's directory is never
deleted, refusals of files, FIFOs, dangling links and `-`. Everything happens inside tmp_path."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from fileio_support import hidden, mode_of

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files import fileio
from fsedp_compiler.files.fileio import atomic_directory, write_output


def _program_dir(path: Path, chiplets: int) -> None:
    path.mkdir()
    (path / "program.json").write_text(f'{{"chiplets": {chiplets}}}')
    for c in range(chiplets):
        (path / f"chiplet_{c}.bin").write_bytes(b"old")


def test_directory_output_is_built_aside_and_moved_in(tmp_path: Path, umask) -> None:
    umask(0o022)
    out = tmp_path / "prog"
    with atomic_directory(out) as work:
        assert work.parent == tmp_path and work.name.startswith(".prog.") and work != out
        assert not out.exists()  # nothing at the destination until the end
        (work / "program.json").write_text("{}")
        write_output(work / "chiplet_0.bin", b"new")
    assert sorted(p.name for p in out.iterdir()) == ["chiplet_0.bin", "program.json"]
    assert mode_of(out) == 0o755 and hidden(tmp_path) == []


def test_earlier_output_is_replaced_and_its_stale_files_go(tmp_path: Path) -> None:
    out = tmp_path / "prog"
    _program_dir(out, 8)
    out.chmod(0o750)
    with atomic_directory(out) as work:
        assert (out / "chiplet_7.bin").exists()  # the old output stays until the new one is complete
        (work / "program.json").write_text('{"chiplets": 4}')
        for c in range(4):
            (work / f"chiplet_{c}.bin").write_bytes(b"new")
    assert sorted(p.name for p in out.iterdir()) == [f"chiplet_{c}.bin" for c in range(4)] + ["program.json"]
    assert (out / "chiplet_0.bin").read_bytes() == b"new" and not (out / "chiplet_7.bin").exists()
    assert mode_of(out) == 0o750 and hidden(tmp_path) == []


@pytest.mark.parametrize("exc", [FsedpError("emit failed"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_failure_keeps_the_earlier_output_and_removes_the_work(tmp_path: Path, exc: BaseException) -> None:
    out = tmp_path / "prog"
    _program_dir(out, 2)
    with pytest.raises(type(exc)):
        with atomic_directory(out) as work:
            (work / "program.json").write_text("half")
            (work / "chiplet_0.bin").write_bytes(b"half")
            raise exc
    assert sorted(p.name for p in out.iterdir()) == ["chiplet_0.bin", "chiplet_1.bin", "program.json"]
    assert (out / "chiplet_0.bin").read_bytes() == b"old" and hidden(tmp_path) == []


def test_failure_without_an_earlier_output_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FsedpError):
        with atomic_directory(tmp_path / "prog") as work:
            (work / "chiplet_0.bin").write_bytes(b"half")
            raise FsedpError("emit failed")
    assert list(tmp_path.iterdir()) == []


def test_empty_directory_is_used(tmp_path: Path) -> None:
    out = tmp_path / "prog"
    out.mkdir()
    with atomic_directory(out) as work:
        (work / "program.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["program.json"] and hidden(tmp_path) == []


def test_a_users_directory_is_refused_never_deleted(tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(FsedpError) as err:
        with atomic_directory(out):
            pytest.fail("the body must not run")
    assert str(err.value).startswith(f"{out}: error: is a non-empty directory without program.json")
    assert (out / "thesis.tex").read_text() == "precious" and hidden(tmp_path) == []


def test_marker_is_configurable(tmp_path: Path) -> None:
    out = tmp_path / "figs"
    out.mkdir()
    (out / "results.md").write_text("old")
    (out / "old.png").write_bytes(b"")
    with atomic_directory(out, marker="results.md") as work:
        (work / "results.md").write_text("new")
    assert [p.name for p in out.iterdir()] == ["results.md"]


@pytest.mark.parametrize("make", ["file", "fifo", "dangling", "missing_parent", "dash"])
def test_directory_output_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: str) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    if make == "file":
        out.write_text("keep me")
    elif make == "fifo":
        os.mkfifo(out)
    elif make == "dangling":
        out.symlink_to("nowhere")
    elif make == "missing_parent":
        out = tmp_path / "no" / "out"
    else:
        out = Path("-")
    expected = {"file": "output path exists and is not a directory", "fifo": "output path exists and is not a directory",
                "dangling": "is a symbolic link to a missing file", "missing_parent": "parent does not exist",
                "dash": "a directory output cannot go to standard output"}[make]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FsedpError, match=expected):
        with atomic_directory(out):
            pytest.fail("the body must not run")
    assert sorted(os.listdir(tmp_path)) == before
    if make == "file":
        assert out.read_text() == "keep me"


def test_symlinked_output_directory_keeps_its_link(tmp_path: Path) -> None:
    real = tmp_path / "data" / "run1"
    real.parent.mkdir()
    _program_dir(real, 3)
    link = tmp_path / "out"
    link.symlink_to(real)
    with atomic_directory(link) as work:
        assert work.parent == real.parent  # built beside the real directory (same file system)
        (work / "program.json").write_text("{}")
    assert link.is_symlink() and [p.name for p in real.iterdir()] == ["program.json"]
    assert hidden(real.parent) == [] and hidden(tmp_path) == []


def test_failed_swap_puts_the_earlier_output_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "prog"
    _program_dir(out, 2)
    real_rename = os.rename

    def rename(src, dst):
        if str(dst) == str(out) and ".tmp" in str(src):  # moving the new directory in fails
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(fileio.os, "rename", rename)
    with pytest.raises(FsedpError) as err:
        with atomic_directory(out) as work:
            (work / "program.json").write_text("new")
    assert str(err.value) == f"{out}: error: cannot replace the existing directory: Input/output error"
    assert (out / "program.json").read_text() == '{"chiplets": 2}' and hidden(tmp_path) == []


def test_directory_output_new_directory_mode_follows_umask(tmp_path: Path, umask) -> None:
    umask(0o077)
    with atomic_directory(tmp_path / "prog") as work:
        (work / "program.json").write_text("{}")
    assert mode_of(tmp_path / "prog") == 0o700


def test_a_directory_made_meanwhile_by_the_user_is_not_deleted(tmp_path: Path) -> None:
    out = tmp_path / "prog"
    with pytest.raises(FsedpError, match="non-empty directory without program.json"):
        with atomic_directory(out) as work:
            (work / "program.json").write_text("{}")
            out.mkdir()  # e.g. the user, during a long compile
            (out / "notes.txt").write_text("mine")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and hidden(tmp_path) == []
