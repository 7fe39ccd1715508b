"""The shared stream-table file of a static program (`streams.bin`): every layer step's stream
table, stored once for all chiplets; each chiplet's step opens with a TABLE record naming it.

Layout, little-endian throughout::

    offset  type      field
    0       4 bytes   magic b"FST3"
    4       u16       version (3, the ISA's)
    6       u16       reserved, 0
    8       u32       T: number of tables
    12      u32       N: number of records
    16      T x 8     per table: u16 layer, u16 step, u32 records (its STREAM and MASK records)
            ...       zero bytes up to the next multiple of 32
    H       32*N      the records, table after table; H = 32 * ceil((16 + 8T) / 32); nothing follows.

A table holds STREAM records (in the global order, R6), each followed by its MASK records; its
STREAM records carry the table's layer and step. Each (layer, step) has at most one table; a step
without streams has none.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from fsedp_compiler.errors import FsedpError

from fsedp_compiler.isa.opcodes import INSTR_DTYPE, MASK, RECORD_SIZE, STREAM, VERSION
from fsedp_compiler.isa.program import Program, find_problem

TABLES_MAGIC = b"FST3"
TABLES_FILE = "streams.bin"
_HEADER = struct.Struct("<4sHHII")  # magic, version, reserved, tables, records
_ENTRY = np.dtype([("layer", "<u2"), ("step", "<u2"), ("count", "<u4")])


@dataclass(frozen=True, eq=False)
class StreamTables:
    """Every step's stream table: `index[(layer, step)]` = its record range [lo, hi) in `instrs`."""

    index: dict[tuple[int, int], tuple[int, int]]
    instrs: np.ndarray

    def records(self, layer: int, step: int) -> tuple[int, np.ndarray]:
        """(index of its first record, its records) of one step's table; no table: no records."""
        lo, hi = self.index.get((layer, step), (0, 0))
        return lo, self.instrs[lo:hi]

    def streams(self, layer: int, step: int) -> int:
        """How many streams (STREAM records) the step's table holds."""
        return int(np.count_nonzero(self.records(layer, step)[1]["opcode"] == STREAM))


def _header_size(tables: int) -> int:
    return -(-(_HEADER.size + _ENTRY.itemsize * tables) // RECORD_SIZE) * RECORD_SIZE


def encode_tables(tables: list[tuple[int, int, np.ndarray]]) -> bytes:
    """The file bytes of (layer, step, records) tables, in the order given."""
    entries = np.array([(l, s, len(r)) for l, s, r in tables], dtype=_ENTRY)
    count = int(entries["count"].sum()) if len(entries) else 0
    head = _HEADER.pack(TABLES_MAGIC, VERSION, 0, len(tables), count)
    pad = bytes(_header_size(len(tables)) - _HEADER.size - entries.nbytes)
    body = [np.ascontiguousarray(r, dtype=INSTR_DTYPE).tobytes() for _, _, r in tables]
    return b"".join([head, entries.tobytes(), pad, *body])


def decode_tables(data: bytes, path: str = "<bytes>") -> StreamTables:
    """Parse and check a stream-table file; any defect is an `FsedpError` naming `path` and the
    byte offset."""
    size = len(data)

    def fail(offset: int, message: str) -> FsedpError:
        return FsedpError(f"byte offset {offset}: {message}", path=path)

    if size < _HEADER.size:
        raise fail(size, f"truncated header: {size} bytes, the header is {_HEADER.size} bytes")
    magic, version, reserved, ntables, count = _HEADER.unpack_from(data, 0)
    if magic != TABLES_MAGIC:
        raise fail(0, f"bad magic {magic!r}: not an fsedpc stream-table file (expected {TABLES_MAGIC!r})")
    if version != VERSION:
        raise fail(4, f"unsupported stream-table version {version} (this fsedpc reads version {VERSION})")
    if reserved:
        raise fail(6, "reserved field must be 0")
    start = _header_size(ntables) if ntables <= size // _ENTRY.itemsize else size + 1
    if size < start:
        raise fail(size, f"truncated header: the index of {ntables} tables ends at byte {start}, file has {size} bytes")
    if size != start + RECORD_SIZE * count:
        raise fail(min(size, start + RECORD_SIZE * count),
                   f"the header says {count} records ({RECORD_SIZE * count} bytes from byte {start}), "
                   f"{size - start} bytes follow")
    entries = np.frombuffer(data, dtype=_ENTRY, count=ntables, offset=_HEADER.size)
    pad_from = _HEADER.size + entries.nbytes
    if any(data[pad_from:start]):
        raise fail(pad_from, "nonzero padding after the table index")
    counts = entries["count"].astype(np.int64)
    if int(counts.sum()) != count:
        raise fail(12, f"the tables' records add up to {int(counts.sum())}, the header says {count}")
    instrs = np.frombuffer(data, dtype=INSTR_DTYPE, count=count, offset=start)
    problem = find_problem(instrs, 0, 0)
    if problem is not None:
        i, msg = problem
        raise fail(start + RECORD_SIZE * i, f"record {i}: {msg}")
    op = instrs["opcode"]
    stray = np.flatnonzero((op != STREAM) & (op != MASK))
    if len(stray):
        i = int(stray[0])
        raise fail(start + RECORD_SIZE * i, f"record {i}: a stream table holds stream and mask records only")
    index: dict[tuple[int, int], tuple[int, int]] = {}
    lo = 0
    for t, (layer, step, k) in enumerate(entries.tolist()):
        where = _HEADER.size + _ENTRY.itemsize * t
        if k == 0:
            raise fail(where, f"table {t} (l={layer} s={step}) is empty; a step without streams has no table")
        if (layer, step) in index:
            raise fail(where, f"table {t}: a second table for l={layer} s={step}")
        recs = instrs[lo:lo + k]
        if recs["opcode"][0] != STREAM:
            raise fail(start + RECORD_SIZE * lo, f"record {lo}: table {t} must start with a stream record")
        streams = np.flatnonzero(recs["opcode"] == STREAM)
        bad = (recs["layer"][streams] != layer) | (recs["step"][streams] != step)
        if bad.any():
            i = lo + int(streams[np.argmax(bad)])
            raise fail(start + RECORD_SIZE * i, f"record {i}: stream row tagged l={int(instrs['layer'][i])} "
                                                f"s={int(instrs['step'][i])} in the table of l={layer} s={step}")
        index[(layer, step)] = (lo, lo + k)
        lo += k
    return StreamTables(index, instrs)


def tables_text(tables: StreamTables) -> str:
    """The stream tables as `.fsa`-style text (for `fsedpc disasm streams.bin`): one table per
    paragraph, headed by its TABLE line."""
    from fsedp_compiler.isa.text import to_text

    out = [f"# fsedpc stream tables v{VERSION}"]
    for (layer, step), (lo, hi) in tables.index.items():
        recs = tables.instrs[lo:hi]
        body = to_text(Program.trusted(0, "static", (), 0, recs)).split("\n")[5:]
        streams = int(np.count_nonzero(recs["opcode"] == STREAM))
        out += ["", f"table   l={layer} s={step} n={streams}", *[line for line in body if line]]
    return "\n".join(out) + "\n"
