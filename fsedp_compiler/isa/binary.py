"""The `.bin` form of a program: a 16-byte header, the port table, then the 32-byte records.

Layout, little-endian throughout::

    offset  type      field
    0       4 bytes   magic b"FSA2"
    4       u16       version (2)
    6       u16       chiplet
    8       u8        mode (0 static, 1 dynamic)
    9       u8        channels: DRAM channels on this chiplet (0 if none)
    10      u16       P: number of ports
    12      u32       N: number of records
    16      u16[P]    neighbour chiplet of each port, in port order
            ...       zero bytes up to the next multiple of 32
    H       32*N      the records; H = 32 * ceil((16 + 2P) / 32); nothing follows them.
"""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np

from fsedp_compiler.errors import FsedpError

from fsedp_compiler.isa.opcodes import INSTR_DTYPE, MAGIC, MODES, RECORD_SIZE, VERSION
from fsedp_compiler.isa.program import MAX_PORTS, Program, find_problem

_HEADER = struct.Struct("<4sHHBBHI")  # magic, version, chiplet, mode, channels, ports, count
HEADER_SIZE = _HEADER.size  # 16
_RAW = np.dtype((np.void, INSTR_DTYPE.itemsize))


def header_size(nports: int) -> int:
    """Bytes before the first record: header and port table, padded to a multiple of 32."""
    return -(-(HEADER_SIZE + 2 * nports) // RECORD_SIZE) * RECORD_SIZE


def encode_header(chiplet: int, mode: str, ports: tuple[int, ...], channels: int, count: int) -> bytes:
    """The bytes before the records of a program of `count` records: header, port table, padding."""
    nports = len(ports)
    head = _HEADER.pack(MAGIC, VERSION, chiplet, MODES.index(mode), channels, nports, count)
    table = np.asarray(ports, dtype="<u2").tobytes()
    return b"".join((head, table, bytes(header_size(nports) - HEADER_SIZE - len(table))))


def encode(p: Program) -> bytes:
    """The `.bin` bytes of `p`."""
    return encode_header(p.chiplet, p.mode, p.ports, p.channels, len(p.instrs)) + p.instrs.tobytes()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def decode(data: bytes, path: str = "<bytes>") -> Program:
    """Parse `.bin` bytes; any defect is an `FsedpError` naming `path` and the byte offset."""
    data = bytes(data) if not isinstance(data, bytes) else data
    size = len(data)

    def fail(offset: int, message: str) -> FsedpError:
        return FsedpError(f"byte offset {offset}: {message}", path=path)

    if size == 0:
        raise fail(0, f"truncated header: file is empty, the header is {HEADER_SIZE} bytes")
    if data[:4] != MAGIC[: min(size, 4)]:
        if data[:3] == MAGIC[:3]:
            raise fail(0, f"ISA binary of another version ({data[:4]!r}); this fsedpc reads {MAGIC!r}")
        raise fail(0, f"bad magic {data[:4]!r}: not an fsedpc ISA binary (expected {MAGIC!r})")
    if size < HEADER_SIZE:
        raise fail(size, f"truncated header: {size} bytes, the header is {HEADER_SIZE} bytes")
    _, version, chiplet, mode, channels, nports, count = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise fail(4, f"unsupported ISA version {version} (this fsedpc reads version {VERSION})")
    if mode >= len(MODES):
        raise fail(8, f"bad mode byte {mode} (0 static, 1 dynamic)")
    if nports > MAX_PORTS:
        raise fail(10, f"{nports} ports; at most {MAX_PORTS}")
    start = header_size(nports)
    if size < start:
        raise fail(size, f"truncated header: the port table of {nports} ports ends at byte {start}, "
                         f"file has {size} bytes")
    ports = np.frombuffer(data, dtype="<u2", count=nports, offset=HEADER_SIZE)
    pad_from = HEADER_SIZE + 2 * nports
    if any(data[pad_from:start]):
        nonzero = pad_from + next(i for i, b in enumerate(data[pad_from:start]) if b)
        raise fail(nonzero, "nonzero padding after the port table")
    need = start + RECORD_SIZE * count
    if size < need:
        have = (size - start) // RECORD_SIZE
        raise fail(size, f"truncated records: the header says {count} instructions ({RECORD_SIZE * count} bytes "
                         f"from byte {start}), only {size - start} bytes follow ({have} whole instructions)")
    if size > need:
        raise fail(need, f"{_plural(size - need, 'trailing byte')} after {count} instructions")
    instrs = np.frombuffer(data, dtype=INSTR_DTYPE, count=count, offset=start)
    problem = find_problem(instrs, nports, channels)
    if problem is not None:
        i, msg = problem
        raise fail(start + RECORD_SIZE * i, f"instruction {i}: {msg}")
    return Program.trusted(chiplet, MODES[mode], tuple(ports.tolist()), channels, instrs)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of `data` as lower-case hex (content hashes in program.json)."""
    return hashlib.sha256(data).hexdigest()


class BinWriter:
    """One program's `.bin`, written to `path` as its records come, so that a long program is
    never in memory whole: the header's place is kept, the records follow chunk by chunk (each
    checked as `Program` checks them), and `close` writes the header with the final count.

    The bytes are those of `encode(Program(...))` of all the records at once. Write into a
    temporary directory (`files.atomic_directory`): an error leaves the file half-written."""

    #: records checked and written at a time (512 KiB)
    BUFFER = 1 << 14

    def __init__(self, path: str | os.PathLike[str], chiplet: int, mode: str, ports: tuple[int, ...],
                 channels: int) -> None:
        meta = Program(chiplet, mode, ports, channels, np.zeros(0, dtype=INSTR_DTYPE))  # checks the fields
        self.path = path
        self.chiplet, self.mode, self.ports, self.channels = meta.chiplet, meta.mode, meta.ports, meta.channels
        self.count = 0
        self._pending: list[np.ndarray] = []
        self._buffered = 0
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close)
        self._file.write(bytes(header_size(len(self.ports))))

    def write(self, instrs: np.ndarray) -> None:
        """Append records (an `INSTR_DTYPE` array); ValueError naming the first bad one (when
        its chunk is checked: records are buffered up to `BUFFER` at a time)."""
        self._pending.append(instrs)
        self._buffered += len(instrs)
        if self._buffered >= self.BUFFER:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) == 1:
            chunk = self._pending[0]
        else:  # joined as plain 32-byte items: numpy's structured concatenate is slow per call
            chunk = np.concatenate([np.ascontiguousarray(p).view(_RAW) for p in self._pending]).view(INSTR_DTYPE)
        self._pending, self._buffered = [], 0
        problem = find_problem(chunk, len(self.ports), self.channels)
        if problem is not None:
            i, msg = problem
            raise ValueError(f"chiplet {self.chiplet}: instruction {self.count + i}: {msg}")
        self._file.write(np.ascontiguousarray(chunk).data)
        self.count += len(chunk)

    def close(self) -> str:
        """Write the header, close the file and return its SHA-256 (read back in chunks)."""
        self._flush()
        if self.count > 0xFFFFFFFF:
            raise ValueError("more than 2**32 - 1 instructions")
        self._file.seek(0)
        self._file.write(encode_header(self.chiplet, self.mode, self.ports, self.channels, self.count))
        self._file.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        return digest.hexdigest()

    def abandon(self) -> None:
        """Close the file without finishing it (on an error: its directory is discarded)."""
        self._file.close()
