"""Instruction rows as `dataflow.instructions` stores them: an IR kind, then the ISA's record
columns without the layer.

The expansion (FSE-DP) and the baseline encoder build rows here by field name; `emit-isa` turns
kinds into opcodes and adds the layer back. `wide` (addresses, member sets) is kept as a signed
64-bit value, as the IR's i64 arrays hold it.
"""

from __future__ import annotations

from fsedp_compiler.dialects.dataflow import KINDS
from fsedp_compiler.isa import record

_U64 = 1 << 64
_KIND = {name: i for i, name in enumerate(KINDS)}


def signed64(value: int) -> int:
    """`value` (0 <= value < 2**64) as the i64 with the same bits."""
    return value - _U64 if value >= 1 << 63 else value


def ir_row(kind: str, **keys: int) -> tuple[int, ...]:
    """One IR row of instruction `kind` from its field names (those of docs/isa.md)."""
    rec = record(kind, **keys)
    wide = rec[11]
    return (_KIND[kind], rec[1], rec[2], rec[4], rec[5], rec[6], rec[7], rec[8], rec[9], rec[10],
            wide - _U64 if wide >= 1 << 63 else wide)


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
