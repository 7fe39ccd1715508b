"""fileio: outputs never replace special files, `-` is stdio, umask permissions, located write errors,
all-or-nothing batches and directory outputs. Everything happens inside tmp_path (FIFOs, symlinks,
sockets are made there; a "device" is a stat monkeypatch): no shared path is ever touched."""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files import fileio
from fsedp_compiler.files.fileio import (
    atomic_directory,
    check_outputs,
    current_umask,
    plan_output,
    read_text,
    write_output,
    write_outputs,
)


@pytest.fixture
def umask() -> Iterator[callable]:
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _hidden(directory: Path) -> list[str]:
    """Temporary files or directories left behind (they are hidden: a leading dot)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


class FifoReader:
    """A thread that reads a FIFO to its end (opening a FIFO for writing waits for a reader)."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()

    def _read(self, path: Path) -> None:
        with open(path, "rb") as fifo:
            self.data = fifo.read()

    def result(self) -> bytes:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the FIFO was never written and closed"
        return self.data


# --------------------------------------------------------------------------- regular files


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_umask_permissions(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    assert current_umask() == mask
    write_output(tmp_path / "out.json", "{}\n")
    assert (tmp_path / "out.json").read_text() == "{}\n"
    assert _mode(tmp_path / "out.json") == mode
    assert _hidden(tmp_path) == []


def test_umask_is_read_without_proc_too(monkeypatch: pytest.MonkeyPatch, umask) -> None:
    umask(0o027)

    def no_proc(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/self/status")

    monkeypatch.setattr(fileio, "open", no_proc, raising=False)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # restored after reading


def test_existing_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    out = tmp_path / "out.txt"
    out.write_text("old")
    out.chmod(0o640)
    write_output(out, "new")
    assert out.read_text() == "new" and _mode(out) == 0o640


def test_replacing_is_atomic_a_new_inode(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old")
    before = os.stat(out).st_ino
    write_output(out, b"new")
    assert out.read_bytes() == b"new" and os.stat(out).st_ino != before


def test_read_only_file_is_refused_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "keep.txt"
    out.write_text("mine")
    out.chmod(0o444)
    real_access = os.access
    # as root os.access says yes to everything: pretend to be an ordinary user for this file
    monkeypatch.setattr(fileio.os, "access", lambda p, m: False if str(p) == str(out) else real_access(p, m))
    with pytest.raises(FsedpError) as err:
        write_output(out, "new")
    assert str(err.value).startswith(f"{out}: error: cannot write: the file is read-only")
    assert out.read_text() == "mine"


def test_directory_and_missing_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FsedpError, match="is a directory; give a file name"):
        write_output(tmp_path, "x")
    with pytest.raises(FsedpError) as err:
        write_output(tmp_path / "no" / "out.txt", "x")
    assert str(err.value) == f"{tmp_path / 'no' / 'out.txt'}: error: output directory does not exist: {tmp_path / 'no'}"
    with pytest.raises(FsedpError, match="empty output path"):
        write_output("", "x")


# --------------------------------------------------------------------------- symlinks


def test_symlink_to_a_regular_file_writes_the_target(tmp_path: Path, umask) -> None:
    umask(0o022)
    real = tmp_path / "sub" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_output(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new" and _mode(real) == 0o600
    assert _hidden(tmp_path) == [] and _hidden(real.parent) == []


def test_symlink_chain_is_followed(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("old")
    (tmp_path / "b").symlink_to("c")
    (tmp_path / "a").symlink_to("b")
    write_output(tmp_path / "a", "new")
    assert (tmp_path / "c").read_text() == "new" and (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_dangling_and_looping_symlinks_are_refused(tmp_path: Path) -> None:
    dangling = tmp_path / "dangling"
    dangling.symlink_to("missing.txt")
    with pytest.raises(FsedpError) as err:
        write_output(dangling, "x")
    assert str(err.value).startswith(f"{dangling}: error: is a symbolic link to a missing file (missing.txt)")
    assert dangling.is_symlink() and not (tmp_path / "missing.txt").exists()
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises(FsedpError, match="cannot follow the symbolic link"):
        write_output(loop, "x")
    assert loop.is_symlink()


def test_symlink_to_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    reader = FifoReader(fifo)
    write_output(link, "through the link\n")
    assert reader.result() == b"through the link\n"
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --------------------------------------------------------------------------- special files


def test_fifo_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    inode = os.lstat(fifo).st_ino
    assert plan_output(fifo).kind == "in_place"
    reader = FifoReader(fifo)
    write_output(fifo, b"x" * 200_000)  # more than a pipe buffer: several writes
    assert reader.result() == b"x" * 200_000
    st = os.lstat(fifo)
    assert stat.S_ISFIFO(st.st_mode) and st.st_ino == inode
    assert _hidden(tmp_path) == []


def _pretend_device(monkeypatch: pytest.MonkeyPatch, path: Path, kind: int = stat.S_IFCHR) -> None:
    """Make `os.stat` report `path` as a device (only fileio's view; lstat stays true)."""
    real_stat = os.stat

    def fake_stat(p, *args, **kwargs):
        st = real_stat(p, *args, **kwargs)
        if os.fspath(p) == str(path):
            fields = list(st)
            fields[0] = kind | 0o666
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(fileio.os, "stat", fake_stat)


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK], ids=["char", "block"])
def test_device_is_written_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: int) -> None:
    dev = tmp_path / "dev"
    dev.write_bytes(b"")
    inode = os.lstat(dev).st_ino
    _pretend_device(monkeypatch, dev, kind)
    assert plan_output(dev).kind == "in_place"
    write_output(dev, "to the device")
    assert os.lstat(dev).st_ino == inode and dev.read_text() == "to the device"  # opened, not renamed
    assert _hidden(tmp_path) == []


def test_device_write_error_names_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = tmp_path / "full"
    dev.write_bytes(b"")
    _pretend_device(monkeypatch, dev)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "write", full)
    with pytest.raises(FsedpError) as err:
        write_output(dev, "x")
    assert str(err.value) == f"{dev}: error: cannot write: No space left on device"
    assert err.value.exit_code == 2


def test_socket_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative name: socket paths are limited to ~100 bytes
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
        with pytest.raises(FsedpError, match="sock: error: is a socket, not a file that can be written"):
            write_output("sock", "x")
    assert stat.S_ISSOCK(os.lstat(tmp_path / "sock").st_mode)


# --------------------------------------------------------------------------- '-' is stdio


def test_dash_is_stdout_and_no_file_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.chdir(tmp_path)
    print("first", end="\n")
    write_output("-", b"\x00binary\xff")
    assert capsysbinary.readouterr().out == b"first\n\x00binary\xff"
    assert list(tmp_path.iterdir()) == []


def test_dash_on_a_text_only_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    write_output("-", "text\n")
    assert stream.getvalue() == "text\n"


def test_stdout_write_error_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    class Full(io.BytesIO):
        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(Full()))
    with pytest.raises(FsedpError, match=r"^<stdout>: error: cannot write: No space left on device"):
        write_output("-", "x")


def test_dash_reads_stdin_and_errors_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("héllo\n".encode())))
    assert read_text("-", "MLIR file") == "héllo\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe")))
    with pytest.raises(FsedpError, match=r"^<stdin>: error: MLIR file is not UTF-8 text"):
        read_text("-", "MLIR file")


# --------------------------------------------------------------------------- write errors


def _fail_on(monkeypatch: pytest.MonkeyPatch, name: str, code: int, after: int = 0) -> None:
    """Make os.<name> raise OSError(code) from its (after+1)-th call on."""
    real = getattr(os, name)
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(fileio.os, name, failing)


@pytest.mark.parametrize("call, code", [("write", errno.ENOSPC), ("fsync", errno.ENOSPC), ("fsync", errno.EIO),
                                        ("replace", errno.EROFS)])
def test_write_errors_name_the_users_path_and_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           call: str, code: int) -> None:
    out = tmp_path / "out.mlir"
    out.write_text("old")
    _fail_on(monkeypatch, call, code)
    with pytest.raises(FsedpError) as err:
        write_output(out, "new" * 1000)
    message = str(err.value)
    assert message.startswith(f"{out}: error: ") and os.strerror(code) in message
    assert ".tmp" not in message and err.value.exit_code == 2
    monkeypatch.undo()
    assert out.read_text() == "old" and _hidden(tmp_path) == []


def test_error_creating_the_temporary_file_names_the_users_path(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(prefix: str, suffix: str, dir: str):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "abc" + suffix))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    with pytest.raises(FsedpError) as err:
        write_output(tmp_path / "out.txt", "x")
    assert str(err.value) == f"{tmp_path / 'out.txt'}: error: cannot create a file in {tmp_path}: Permission denied"


def test_interrupt_while_writing_removes_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_output(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_partial_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(fileio.os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    write_output(tmp_path / "out.txt", "0123456789" * 10)
    assert (tmp_path / "out.txt").read_text() == "0123456789" * 10


# --------------------------------------------------------------------------- batches


def test_batch_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.png"
    first.write_text("old a")
    _fail_on(monkeypatch, "write", errno.ENOSPC, after=1)  # the second output's write fails
    with pytest.raises(FsedpError, match=f"^{second}: error: cannot write: No space left on device"):
        write_outputs({first: "new a", second: b"png"})
    monkeypatch.undo()
    assert first.read_text() == "old a" and not second.exists() and _hidden(tmp_path) == []
    write_outputs([(first, "new a"), (second, b"png")])
    assert first.read_text() == "new a" and second.read_bytes() == b"png"


def test_batch_refuses_a_file_or_stdout_named_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FsedpError, match="the same file is also given as the output out.json"):
        check_outputs(["out.json", None, "./out.json"])
    (tmp_path / "link").symlink_to("out.json")
    (tmp_path / "out.json").write_text("")
    with pytest.raises(FsedpError, match="the same file"):
        check_outputs(["out.json", "link"])
    with pytest.raises(FsedpError, match="only one output can go to standard output"):
        write_outputs([("-", "a"), ("-", "b")])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert [p.kind for p in check_outputs([fifo, fifo])] == ["in_place", "in_place"]  # like /dev/null twice


def test_batch_checks_every_output_before_writing_any(tmp_path: Path) -> None:
    with pytest.raises(FsedpError, match="output directory does not exist"):
        write_outputs({tmp_path / "a.json": "a", tmp_path / "missing" / "b.json": "b"})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- directory outputs


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
    assert _mode(out) == 0o755 and _hidden(tmp_path) == []


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
    assert _mode(out) == 0o750 and _hidden(tmp_path) == []


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
    assert (out / "chiplet_0.bin").read_bytes() == b"old" and _hidden(tmp_path) == []


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
    assert [p.name for p in out.iterdir()] == ["program.json"] and _hidden(tmp_path) == []


def test_a_users_directory_is_refused_never_deleted(tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(FsedpError) as err:
        with atomic_directory(out):
            pytest.fail("the body must not run")
    assert str(err.value).startswith(f"{out}: error: is a non-empty directory without program.json")
    assert (out / "thesis.tex").read_text() == "precious" and _hidden(tmp_path) == []


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
    assert _hidden(real.parent) == [] and _hidden(tmp_path) == []


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
    assert (out / "program.json").read_text() == '{"chiplets": 2}' and _hidden(tmp_path) == []


def test_directory_output_new_directory_mode_follows_umask(tmp_path: Path, umask) -> None:
    umask(0o077)
    with atomic_directory(tmp_path / "prog") as work:
        (work / "program.json").write_text("{}")
    assert _mode(tmp_path / "prog") == 0o700


def test_a_directory_made_meanwhile_by_the_user_is_not_deleted(tmp_path: Path) -> None:
    out = tmp_path / "prog"
    with pytest.raises(FsedpError, match="non-empty directory without program.json"):
        with atomic_directory(out) as work:
            (work / "program.json").write_text("{}")
            out.mkdir()  # e.g. the user, during a long compile
            (out / "notes.txt").write_text("mine")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and _hidden(tmp_path) == []


def test_closed_stdio_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(FsedpError, match="^<stdout>: error: standard output is closed"):
        write_output("-", "x")
    with pytest.raises(FsedpError, match="^<stdin>: error: standard input is closed"):
        read_text("-")
