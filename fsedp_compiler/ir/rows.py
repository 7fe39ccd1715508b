"""Instruction rows as `dataflow.instructions` stores them: an IR kind, then the ISA's record
columns without the layer.

The expansion (FSE-DP) and the baseline encoder build rows here by field name; `emit-isa` turns
kinds into opcodes and adds the layer back. `wide` (addresses, member sets) is kept as a signed
64-bit value, as the IR's i64 arrays hold it.
"""

from __future__ import annotations

import numpy as np

from fsedp_compiler.dialects.dataflow import FIELDS, KINDS
from fsedp_compiler.isa import COLUMNS, OPCODE, OPS

_U64 = 1 << 64
_KIND = {name: i for i, name in enumerate(KINDS)}
#: record column -> IR row position: the opcode and the layer column (3) are not in the row
_IR_POS = {1: 1, 2: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 9, 11: 10}
#: per kind, each text key's IR row position (None: the layer column, which the IR leaves out)
_KEY_POS = {name: {f.key: _IR_POS.get(COLUMNS.index(f.column)) for f in OPS[OPCODE[name]].fields}
            for name in KINDS if name in OPCODE}


def signed64(value: int) -> int:
    """`value` (0 <= value < 2**64) as the i64 with the same bits."""
    return value - _U64 if value >= 1 << 63 else value


def ir_row(kind: str, **keys: int) -> tuple[int, ...]:
    """One IR row of instruction `kind` from its field names (those of docs/isa.md); the same as
    `record` without its layer column, built directly (the static expansion makes millions)."""
    positions = _KEY_POS[kind]
    row = [_KIND[kind], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for key, value in keys.items():
        if (pos := positions[key]) is not None:
            row[pos] = value
    if row[10] >= 1 << 63:
        row[10] -= _U64
    return tuple(row)


def stream_rows(step: int, expert: int, direction_bit: int, members: int, ring: int = 0) -> list[tuple[int, ...]]:
    """A `stream` row and, for sets wider than 64 chiplets, its `mask` continuation rows."""
    words = []
    rest = members >> 64
    while rest:
        words.append(rest & (_U64 - 1))
        rest >>= 64
    first = ir_row("stream", dir=direction_bit, ring=ring, s=step, e=expert, members=members & (_U64 - 1))
    out = [first[:8] + (len(words),) + first[9:]]
    for w, bits in enumerate(words, 1):
        out.append((_KIND["mask"], 0, 0, 0, 0, 0, 0, 0, w, 0, signed64(bits)))
    return out


def rows_to_columns(rows: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """IR rows as the column arrays of `dataflow.instructions`."""
    if not rows:
        return {f: np.zeros(0, dtype=np.int64) for f, _ in FIELDS}
    arr = np.asarray(rows, dtype=np.int64)
    return {f: arr[:, i] for i, (f, _) in enumerate(FIELDS)}
