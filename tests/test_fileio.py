"""fileio: outputs never replace special files, `-` is stdio, umask permissions, located write errors
and all-or-nothing batches (directory outputs: test_fileio_dirs.py). Everything happens inside tmp_path (FIFOs, symlinks,
sockets are made there; a "device" is a stat monkeypatch): no shared path is ever touched."""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
from fileio_support import FifoReader, hidden, mode_of

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files import fileio
from fsedp_compiler.files.fileio import (
    check_outputs,
    current_umask,
    plan_output,
    read_text,
    write_output,
    write_outputs,
)


# --------------------------------------------------------------------------- regular files


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_umask_permissions(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    assert current_umask() == mask
    write_output(tmp_path / "out.json", "{}\n")
    assert (tmp_path / "out.json").read_text() == "{}\n"
    assert mode_of(tmp_path / "out.json") == mode
    assert hidden(tmp_path) == []


def test_umask_is_read_without_proc_too(monkeypatch: pytest.MonkeyPatch, umask) -> None:
    umask(0o027)

    def no_proc(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/self/status")

    monkeypatch.setattr(fileio, "open", no_proc, raising=False)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # restored after reading


def test_existing_file_keeps_itsmode_of(tmp_path: Path, umask) -> None:
    umask(0o022)
    out = tmp_path / "out.txt"
    out.write_text("old")
    out.chmod(0o640)
    write_output(out, "new")
    assert out.read_text() == "new" and mode_of(out) == 0o640


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
    assert real.read_text() == "new" and mode_of(real) == 0o600
    assert hidden(tmp_path) == [] and hidden(real.parent) == []


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
    assert hidden(tmp_path) == []


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
    assert hidden(tmp_path) == []


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
    assert out.read_text() == "old" and hidden(tmp_path) == []


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
    assert first.read_text() == "old a" and not second.exists() and hidden(tmp_path) == []
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


def test_closed_stdio_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(FsedpError, match="^<stdout>: error: standard output is closed"):
        write_output("-", "x")
    with pytest.raises(FsedpError, match="^<stdin>: error: standard input is closed"):
        read_text("-")
