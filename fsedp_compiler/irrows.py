"""Instruction rows as `dataflow.instructions` stores them: ISA records without the layer column.

The expansion (FSE-DP) and the baseline encoder build rows here; `emit-isa` adds the layer back.
`wide` (addresses, member sets) is kept as a signed 64-bit value, as the IR's i64 arrays hold it.
"""

from __future__ import annotations

from fsedp_compiler.isa import MASK, record

_U64 = 1 << 64


def signed64(value: int) -> int:
    """`value` (0 <= value < 2**64) as the i64 with the same bits."""
    return value - _U64 if value >= 1 << 63 else value


def ir_row(op: str, **keys: int) -> tuple[int, ...]:
    """One IR row from the opcode's text keys (`isa.record` without the layer column)."""
    rec = record(op, **keys)
    wide = rec[11]
    return (rec[0], rec[1], rec[2], rec[4], rec[5], rec[6], rec[7], rec[8], rec[9], rec[10],
            wide - _U64 if wide >= 1 << 63 else wide)


def stream_rows(step: int, expert: int, direction_bit: int, members: int) -> list[tuple[int, ...]]:
    """A STREAM row and, for sets wider than 64 chiplets, its MASK continuation rows."""
    words = []
    rest = members >> 64
    while rest:
        words.append(rest & (_U64 - 1))
        rest >>= 64
    out = [ir_row("stream", dir=direction_bit, s=step, e=expert, members=members & (_U64 - 1))]
    out[0] = out[0][:8] + (len(words),) + out[0][9:]
    for w, bits in enumerate(words, 1):
        out.append((MASK, 0, 0, 0, 0, 0, 0, 0, w, 0, signed64(bits)))
    return out
