"""Reading inputs and writing outputs, in one place, so that every command behaves the same.

Outputs (DESIGN.md §6): `-` is standard output. An existing device or FIFO is written in place,
never replaced. A regular file (or the regular file a symlink points at) is written to a hidden
temporary sibling, flushed and fsync'ed (so a full disk is an error, not a truncated file), given
the umask's permissions (or the old file's) and renamed over the destination: readers see the old
file or the whole new one. Several outputs of one command are all or nothing (`write_outputs`).
A directory output is built in a hidden sibling and swapped in (`atomic_directory`). Every failure
is one `FsedpError` naming the user's path, never a temporary file. Inputs: `-` is standard input.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from fsedp_compiler.errors import FsedpError

STDIO = "-"
"""The path that means standard output (for outputs) or standard input (for inputs)."""
STDIN_NAME = "<stdin>"
STDOUT_NAME = "<stdout>"

PathArg = Union[str, "os.PathLike[str]"]
Data = Union[bytes, str]

_UMASK_LOCK = threading.Lock()


def is_stdio(path: PathArg | None) -> bool:
    """Whether `path` is `-`: standard output for an output, standard input for an input."""
    return path is not None and os.fspath(path) == STDIO


def display_name(path: PathArg) -> str:
    """The name an input is called by in messages: `<stdin>` for `-`, else the path."""
    return STDIN_NAME if is_stdio(path) else os.fspath(path)


# --------------------------------------------------------------------------- inputs


def read_text(path: PathArg, what: str = "file") -> str:
    """Read a UTF-8 input file (`-`: standard input), turning OS errors into one clear message."""
    name = display_name(path)
    try:
        if is_stdio(path):
            stream = sys.stdin
            if stream is None:
                raise FsedpError("standard input is closed", path=name)
            data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode("utf-8")
            return data.decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FsedpError(f"{what} not found", path=name) from None
    except IsADirectoryError:
        raise FsedpError(f"expected a {what}, got a directory", path=name) from None
    except UnicodeDecodeError as err:
        raise FsedpError(f"{what} is not UTF-8 text ({err.reason})", path=name) from None
    except OSError as err:
        raise FsedpError(f"cannot read {what}: {err.strerror}", path=name) from None


# --------------------------------------------------------------------------- where an output goes


@dataclass(frozen=True)
class OutputPlan:
    """How one output is written: to stdout, in place (device, FIFO) or by replacing a regular file."""

    user_path: str
    """The path as the user gave it (`<stdout>` for `-`): the only name used in messages."""
    kind: Literal["stdout", "in_place", "replace"]
    target: str
    """The file actually written: `user_path` with any symlink resolved."""
    mode: int = 0
    """Permissions of the new file (`replace` only): the old file's, else 0o666 minus the umask."""


def current_umask() -> int:
    """The process umask, read from /proc where possible (thread-safe), else set and restored once."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # briefly the strictest mask: a file created meanwhile elsewhere is private, not open
        old = os.umask(0o077)
        os.umask(old)
    return old


def _resolve_link(path: str) -> str:
    """`path`, or the file its symlink chain ends at; a dangling or looping link is an error."""
    if not os.path.islink(path):
        return path
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        raise FsedpError(f"is a symbolic link to a missing file ({os.readlink(path)}); "
                         "create that file or remove the link", path=path) from None
    except OSError as err:
        raise FsedpError(f"cannot follow the symbolic link: {err.strerror or err}", path=path) from None


def _kind_name(mode: int) -> str:
    """A file type in words, for messages."""
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def plan_output(path: PathArg) -> OutputPlan:
    """Decide how `path` will be written, or raise the error writing it would meet (before any work)."""
    user = os.fspath(path)
    if user == STDIO:
        return OutputPlan(STDOUT_NAME, "stdout", STDOUT_NAME)
    if not user:
        raise FsedpError("empty output path")
    target = _resolve_link(user)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return OutputPlan(user, "replace", target, 0o666 & ~current_umask())
    except OSError as err:
        raise FsedpError(f"cannot use as an output: {err.strerror or err}", path=user) from None
    if stat.S_ISDIR(st.st_mode):
        raise FsedpError("is a directory; give a file name", path=user)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return OutputPlan(user, "in_place", target)
    if not stat.S_ISREG(st.st_mode):
        raise FsedpError(f"is a {_kind_name(st.st_mode)}, not a file that can be written", path=user)
    if not os.access(target, os.W_OK):
        raise FsedpError("cannot write: the file is read-only (it is left as it is)", path=user)
    return OutputPlan(user, "replace", target, stat.S_IMODE(st.st_mode))


def _check_directory(plan: OutputPlan) -> None:
    """The directory a replaced file goes into must exist and be writable."""
    directory = os.path.dirname(plan.target) or "."
    if not os.path.isdir(directory):
        raise FsedpError(f"output directory does not exist: {directory}", path=plan.user_path)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise FsedpError(f"cannot write: permission denied in the directory {directory}", path=plan.user_path)


def check_outputs(paths: Iterable[PathArg | None]) -> list[OutputPlan]:
    """Plans for the given outputs (None: not asked for); errors now rather than after a long run.

    At most one output may be standard output, and no file may be named twice (devices may be)."""
    plans = [plan_output(p) for p in paths if p is not None]
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.kind == "replace":
            _check_directory(plan)
        if plan.kind == "in_place":
            continue
        key = plan.target if plan.kind == "stdout" else os.path.realpath(plan.target)
        if key in seen:
            what = "only one output can go to standard output" if plan.kind == "stdout" else (
                f"the same file is also given as the output {seen[key]}")
            raise FsedpError(what, path=plan.user_path)
        seen[key] = plan.user_path
    return plans


def check_output_path(path: PathArg) -> OutputPlan:
    """The plan of one output; an error now when it cannot be written (missing directory, a directory...)."""
    return check_outputs([path])[0]


# --------------------------------------------------------------------------- writing


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_error(plan: OutputPlan, err: OSError, what: str = "cannot write") -> FsedpError:
    """An OS error while writing, named by the user's path (never the temporary file's)."""
    return FsedpError(f"{what}: {err.strerror or err}", path=plan.user_path)


def _discard(tmp: str) -> None:
    """Remove a temporary file if it is still there."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _stage(plan: OutputPlan, data: bytes) -> str:
    """A complete, fsync'ed temporary sibling of `plan.target` holding `data`; its path."""
    directory = os.path.dirname(plan.target) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(plan.target)}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise _write_error(plan, err, f"cannot create a file in {directory}") from None
    try:
        try:
            try:
                os.fchmod(fd, plan.mode)  # mkstemp makes 0600
            except OSError:
                pass  # a file system without Unix permissions keeps its own
            _write_all(fd, data)
            os.fsync(fd)  # a full disk shows up here at the latest, before the old file is replaced
        finally:
            os.close(fd)
    except OSError as err:
        _discard(tmp)
        raise _write_error(plan, err) from None
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _write_in_place(plan: OutputPlan, data: bytes) -> None:
    """Write a device or FIFO through an ordinary open (no O_CREAT: never makes a regular file)."""
    try:
        fd = os.open(plan.target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise _write_error(plan, err) from None
    try:
        try:
            _write_all(fd, data)
            try:
                os.fsync(fd)
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EROFS):
                    raise  # pipes and character devices cannot be synced; block devices can
        finally:
            os.close(fd)
    except OSError as err:
        raise _write_error(plan, err) from None


def _write_stdout(plan: OutputPlan, data: bytes) -> None:
    """Write to standard output after whatever text is already buffered there."""
    stream = sys.stdout
    if stream is None:  # started with stdout closed (`>&-`)
        raise FsedpError("standard output is closed", path=plan.user_path)
    try:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            stream.write(data.decode("utf-8", errors="replace"))
            stream.flush()
        else:
            buffer.write(data)
            buffer.flush()
    except BrokenPipeError:
        raise  # `fsedpc ... | head`: reported by the CLI as a normal end
    except OSError as err:
        raise _write_error(plan, err) from None


def write_outputs(outputs: Mapping[PathArg, Data] | Iterable[tuple[PathArg, Data]]) -> None:
    """Write several outputs all or nothing: every file is complete on disk before the first rename.

    Regular files are renamed into place first, then devices/FIFOs and standard output are written."""
    items = list(outputs.items() if isinstance(outputs, Mapping) else outputs)
    plans = check_outputs(path for path, _ in items)
    payloads = [data.encode("utf-8") if isinstance(data, str) else bytes(data) for _, data in items]
    staged: dict[int, str] = {}
    try:
        for i, (plan, data) in enumerate(zip(plans, payloads)):
            if plan.kind == "replace":
                staged[i] = _stage(plan, data)
        for i in list(staged):
            try:
                os.replace(staged[i], plans[i].target)
            except OSError as err:
                raise _write_error(plans[i], err, "cannot move the new file into place") from None
            del staged[i]
    finally:
        for tmp in staged.values():
            _discard(tmp)
    for plan, data in zip(plans, payloads):
        if plan.kind == "in_place":
            _write_in_place(plan, data)
        elif plan.kind == "stdout":
            _write_stdout(plan, data)


def write_output(path: PathArg, data: Data) -> None:
    """Write one output: `-` standard output, a device or FIFO in place, a regular file atomically."""
    write_outputs([(path, data)])


def atomic_write_bytes(path: PathArg, data: bytes) -> None:
    """`write_output` for bytes (the historical name, used by the emitters)."""
    write_output(path, data)


def atomic_write_text(path: PathArg, text: str) -> None:
    """`write_output` for text, encoded as UTF-8."""
    write_output(path, text)


# --------------------------------------------------------------------------- directory outputs


def _directory_target(path: PathArg, marker: str) -> str:
    """The directory an output directory replaces (a symlink resolved); refuses what is not ours."""
    user = os.fspath(path)
    if user == STDIO:
        raise FsedpError("a directory output cannot go to standard output; give a directory name", path=user)
    if not user:
        raise FsedpError("empty output path")
    target = _resolve_link(user)
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise FsedpError(f"output directory's parent does not exist: {os.path.dirname(target) or '.'}", path=user)
    if not os.path.lexists(target):
        return target
    if not os.path.isdir(target):
        raise FsedpError("output path exists and is not a directory", path=user)
    try:
        entries = os.listdir(target)
    except OSError as err:
        raise FsedpError(f"cannot read the existing output directory: {err.strerror or err}", path=user) from None
    if entries and marker not in entries:
        raise FsedpError(f"is a non-empty directory without {marker}, so not an earlier output of fsedpc; "
                         "it is left as it is: give a new or empty directory", path=user)
    return target


def _swap_in(tmp: str, target: str, user: str, marker: str) -> None:
    """Move the finished `tmp` to `target`; an old `target` goes only once the new one is in place."""
    _directory_target(user, marker)  # still ours: a directory made meanwhile may be the user's
    if not os.path.lexists(target):
        try:
            os.rename(tmp, target)
            return
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise FsedpError(f"cannot move the new directory into place: {err.strerror}", path=user) from None
    parent = os.path.dirname(os.path.abspath(target))
    trash = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=parent)
    try:
        old = os.path.join(trash, "old")
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            os.rename(old, target)  # put the earlier output back
            raise
    except OSError as err:
        shutil.rmtree(trash, ignore_errors=True)
        raise FsedpError(f"cannot replace the existing directory: {err.strerror}", path=user) from None
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def atomic_directory(path: PathArg, marker: str = "program.json") -> Iterator[Path]:
    """Build a directory output in a hidden temporary sibling, then swap it in on success.

    On an error or an interrupt the temporary directory is removed and any earlier output stays as
    it was; stale files of an earlier output never survive a success. An existing destination must
    be a directory that is empty or holds `marker` (one of our outputs): a user's directory is
    refused, never deleted."""
    user = os.fspath(path)
    target = _directory_target(user, marker)
    parent = os.path.dirname(os.path.abspath(target))
    try:
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise FsedpError(f"cannot create a directory in {parent}: {err.strerror}", path=user) from None
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.isdir(target) else 0o777 & ~current_umask()
        try:
            os.chmod(tmp, mode)  # mkdtemp makes 0700
        except OSError:
            pass
        yield Path(tmp)
        _swap_in(tmp, target, user, marker)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- append-only logs


class AppendLog:
    """A line-oriented file that only grows (a results store): each line goes out in one write and is
    fsync'ed, so a crash loses at most the line being written; `open` drops such a torn last line."""

    def __init__(self, path: PathArg) -> None:
        self.user_path = os.fspath(path)
        self._fd: int | None = None

    def open(self) -> AppendLog:
        """Open (creating it with the umask's permissions) and cut a torn last line left by a crash."""
        try:
            fd = os.open(self.user_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise FsedpError(f"cannot open for appending: {err.strerror or err}", path=self.user_path) from None
        try:
            size = os.fstat(fd).st_size
            if size:
                tail = os.pread(fd, min(size, 1 << 20), max(size - (1 << 20), 0))
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else max(size - len(tail), 0))
        except OSError as err:
            os.close(fd)
            raise FsedpError(f"cannot repair the end of the file: {err.strerror or err}", path=self.user_path) from None
        self._fd = fd
        return self

    def append(self, line: str) -> None:
        """Write `line` (a newline is added) and fsync it."""
        assert self._fd is not None, "AppendLog.append before open"
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as err:
            raise FsedpError(f"cannot append: {err.strerror or err}", path=self.user_path) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AppendLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
