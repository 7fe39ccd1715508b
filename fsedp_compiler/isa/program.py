"""`Program`: one chiplet's instruction stream, checked record by record on construction.

The checks are structural (what any reader of the format can decide from one program): known
opcodes, unused columns zero, flag values, ports and channels this chiplet has, MASK records only
right after their STREAM, WAIT ids set. What the instructions *mean* is checked by the machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsedp_compiler.isa.opcodes import (
    ANY_UNIT,
    COLUMNS,
    CONDITIONS,
    FFN,
    INSTR_DTYPE,
    LOAD,
    MASK,
    MODES,
    OPS,
    POLICIES,
    STREAM,
    WAIT,
    WHEN,
    WHERE,
    OpInfo,
)

MAX_PORTS = ANY_UNIT - 1
"""Ports are numbered 0..253 in the unit byte (0xFF is `*`)."""

_KNOWN = np.array([v in OPS for v in range(256)])


def _op_table(fn) -> np.ndarray:
    """bool[256] indexed by opcode: `fn` of each known opcode, False for unknown ones."""
    return np.array([bool(fn(OPS[v])) if v in OPS else False for v in range(256)])


_USES = {c: _op_table(lambda i, c=c: c in i.columns) for c in COLUMNS[1:]}
_PORT_OP = _op_table(lambda i: any(f.kind == "port" for f in i.fields))
_CHANNEL_OP = _op_table(lambda i: any(f.kind == "channel" for f in i.fields))
_X_RANGE = {STREAM: (0, 3), LOAD: (0, 1), FFN: (0, 1), WHEN: (1, max(CONDITIONS)), WHERE: (1, max(POLICIES))}
_X_CHECKED = np.array([v in _X_RANGE for v in range(256)])
_X_MIN = np.array([_X_RANGE.get(v, (0, 0))[0] for v in range(256)], dtype=np.int64)
_X_MAX = np.array([_X_RANGE.get(v, (0, 0xFFFF))[1] for v in range(256)], dtype=np.int64)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def port_message(mnemonic: str, port: int, nports: int) -> str:
    return f"{mnemonic} references missing port {port}; chiplet has {_plural(nports, 'port')}"


def channel_message(mnemonic: str, channel: int, channels: int) -> str:
    return (f"{mnemonic} references missing DRAM channel {channel}; "
            f"chiplet has {_plural(channels, 'DRAM channel')}")


def _mask_problem(instrs: np.ndarray) -> tuple[int, str] | None:
    """MASK records must follow their STREAM, numbered 1..n (STREAM's n)."""
    op = instrs["opcode"]
    with_masks = np.flatnonzero((op == STREAM) & (instrs["n"] > 0))
    masks = np.flatnonzero(op == MASK)
    expected = set()
    for i in with_masks.tolist():
        k = int(instrs["n"][i])
        for w in range(1, k + 1):
            at = i + w
            if at >= len(instrs) or op[at] != MASK or int(instrs["n"][at]) != w:
                return i, f"stream announces {k} mask records; record {at} is not mask word {w}"
            expected.add(at)
    for i in masks.tolist():
        if i not in expected:
            return i, "mask record outside a stream's member set"
    return None


def find_problem(instrs: np.ndarray, nports: int, channels: int) -> tuple[int, str] | None:
    """The first structurally invalid record (index, message), with whole-array numpy checks."""
    if len(instrs) == 0:
        return None
    op = instrs["opcode"]
    unit = instrs["unit"]
    x = instrs["x"].astype(np.int64)
    bad = ~_KNOWN[op]
    for c, uses in _USES.items():
        bad |= (instrs[c] != 0) & ~uses[op]
    bad |= _X_CHECKED[op] & ((x < _X_MIN[op]) | (x > _X_MAX[op]))
    bad |= _PORT_OP[op] & (unit != ANY_UNIT) & (unit >= nports)
    bad |= _CHANNEL_OP[op] & (unit != ANY_UNIT) & (unit >= channels)
    bad |= (op == WAIT) & (instrs["n"] == 0)
    first = int(np.argmax(bad)) if bad.any() else None
    masks = _mask_problem(instrs) if ((op == MASK).any() or ((op == STREAM) & (instrs["n"] > 0)).any()) else None
    if masks is not None and (first is None or masks[0] < first):
        return masks
    if first is None:
        return None
    return first, _describe(instrs[first], nports, channels)


def _describe(rec: np.void, nports: int, channels: int) -> str:
    code = int(rec["opcode"])
    if code not in OPS:
        return f"unknown opcode 0x{code:02x}"
    info: OpInfo = OPS[code]
    name = info.mnemonic
    for c in COLUMNS[1:]:
        if int(rec[c]) and c not in info.columns:
            return f"{name} does not use column '{c}', which must be 0 (is {int(rec[c])})"
    if code in _X_RANGE:
        lo, hi = _X_RANGE[code]
        value = int(rec["x"])
        if not lo <= value <= hi:
            if code == STREAM:
                return f"{name} direction must be 0 (cw), 1 (ccw), 2 (short) or 3 (short-ccw), not {value}"
            if code in (LOAD, FFN):
                return f"{name} {'keep' if code == LOAD else 'sets'} must be 0 or 1, not {value}"
            names = CONDITIONS if code == WHEN else POLICIES
            known = ", ".join(f"{k} {v}" for k, v in names.items())
            return f"{name} has unknown {'condition' if code == WHEN else 'policy'} {value} ({known})"
    if code == WAIT:
        return "wait needs a task id >= 1"
    unit = int(rec["unit"])
    if any(f.kind == "port" for f in info.fields):
        return port_message(name, unit, nports)
    return channel_message(name, unit, channels)


@dataclass(frozen=True, eq=False)
class Program:
    """The instruction stream of one chiplet.

    `ports[p]` is the neighbour chiplet reached through port p; `channels` the DRAM channels of
    this chiplet (0 if none); `instrs` a 1-D `INSTR_DTYPE` array (a list of tuples is
    converted). Construction checks every record (ValueError naming the first bad one).
    """

    chiplet: int
    mode: str
    ports: tuple[int, ...]
    channels: int
    instrs: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= int(self.chiplet) <= 0xFFFF:
            raise ValueError(f"chiplet {self.chiplet} out of range 0..65535")
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'static' or 'dynamic', not {self.mode!r}")
        ports = tuple(int(p) for p in self.ports)
        if len(ports) > MAX_PORTS or any(not 0 <= p <= 0xFFFF for p in ports):
            raise ValueError(f"ports must be at most {MAX_PORTS} chiplet numbers 0..65535: {ports}")
        if not 0 <= int(self.channels) <= 0xFF:
            raise ValueError(f"channels {self.channels} out of range 0..255")
        instrs = self.instrs
        if not (isinstance(instrs, np.ndarray) and instrs.dtype == INSTR_DTYPE):
            instrs = np.array(instrs, dtype=INSTR_DTYPE) if len(instrs) else np.zeros(0, INSTR_DTYPE)
        if instrs.ndim != 1:
            raise ValueError(f"instrs must be 1-D, not shape {instrs.shape}")
        if len(instrs) > 0xFFFFFFFF:
            raise ValueError("more than 2**32 - 1 instructions")
        instrs = np.ascontiguousarray(instrs)
        object.__setattr__(self, "chiplet", int(self.chiplet))
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "channels", int(self.channels))
        object.__setattr__(self, "instrs", instrs)
        problem = find_problem(instrs, len(ports), self.channels)
        if problem is not None:
            i, msg = problem
            raise ValueError(f"chiplet {self.chiplet}: instruction {i}: {msg}")

    @classmethod
    def trusted(cls, chiplet: int, mode: str, ports: tuple[int, ...], channels: int, instrs: np.ndarray) -> Program:
        """A program from parts already checked (the decoder validated them): no second pass."""
        p = object.__new__(cls)
        for name, value in (("chiplet", chiplet), ("mode", mode), ("ports", ports), ("channels", channels),
                            ("instrs", instrs)):
            object.__setattr__(p, name, value)
        return p

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (self.chiplet == other.chiplet and self.mode == other.mode and self.ports == other.ports
                and self.channels == other.channels and np.array_equal(self.instrs, other.instrs))

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.instrs)

    def __repr__(self) -> str:
        return (f"Program(chiplet={self.chiplet}, mode={self.mode!r}, ports={self.ports}, "
                f"channels={self.channels}, instrs=<{len(self.instrs)} instructions>)")
