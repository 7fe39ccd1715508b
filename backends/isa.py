"""The fsedpc per-chiplet instruction set (FSA, version 1): records, binary `.bin`, text `.fsa`.

This module is the ISA reference. The per-opcode table at the end of this docstring ("Opcodes")
is generated from `OPS`, the same table the text printer and parser use, so the documentation,
the printer and the parser cannot drift apart.

Execution model
---------------
There is one program per chiplet. The chiplet's dispatcher reads its instruction stream in
order and hands every instruction to one engine:

* ``dma``      -- one per DRAM channel of the chiplet (LOAD; ``unit`` = channel),
* ``link_out`` -- one per port (SEND, REDUCE, TOKSEND; ``unit`` = port),
* ``link_in``  -- one per port (RECV, TOKRECV; ``unit`` = port),
* ``compute``  -- FFN, ACC, DENSE,
* ``control``  -- everything else (NOP, FREE, SYNC, HALT and the dynamic-mode primitives
  STREAMS, FOREACH, WHEN, WHERE, which the dispatcher evaluates itself).

Engines run concurrently; each engine runs its own instructions in program order. Shard buffers
carry the dependencies between engines: an instruction that needs a shard (SEND, FFN) waits
until the shard is present in a local buffer; LOAD and RECV wait for free buffers; FREE
releases a buffer once every earlier use of it on this chiplet has finished. The rules:

* R4 -- each chiplet has B shard buffers. Forwarding (RECV) needs one free buffer on the
  receiving chiplet; injecting (LOAD) needs two, so an injection never takes the last buffer a
  shard already in flight needs: bubble flow control, deadlock-free on the ring.
* R5 -- a shard's buffer is freed after the last member of S_e used it (FREE).
* R6 -- all chiplets see the streams of a step in one global order (STREAMS tables).

Records
-------
Every instruction is one fixed-width 16-byte little-endian record, `INSTR_DTYPE`::

    offset  type  field    meaning
    0       u8    opcode   see "Opcodes"
    1       u8    unit     DRAM channel (LOAD) or port (link instructions); 0xFF = ANY_UNIT
    2       u16   flags    SEND: bit 0 direction; WHEN: condition; WHERE: policy
    4       u16   layer    shard tag (layer, step, expert, shard) ...
    6       u16   step
    8       u16   expert
    10      u16   shard
    12      u32   arg      bytes, tokens or an instruction count, per opcode

A shard is tagged by (layer, step, expert, shard). ``CURRENT`` = 0xFFFF in step, expert or
shard means "the current step / shard of the enclosing STREAMS / FOREACH" (dynamic programs);
in layer it means the layer of the enclosing STREAMS. ``ANY_UNIT`` = 0xFF in unit means "chosen
at run time": the shard's home channel for LOAD, the port set by the preceding WHERE for SEND,
any port for RECV. Ports are numbered per chiplet; `Program.ports[p]` is the neighbour chiplet
reached through port p.

Fields an opcode does not use must be 0, SEND flags must be 0 or 1, and WHEN/WHERE flags must
name a known condition/policy: `Program`, `decode` and `parse_text` reject anything else, so a
record has exactly one text form and the two forms convert losslessly.

Binary form (.bin)
------------------
Little-endian throughout::

    offset  type      field
    0       4 bytes   magic b"FSA1"
    4       u16       version (1)
    6       u16       chiplet
    8       u8        mode (0 static, 1 dynamic)
    9       u8        channels: DRAM channels on this chiplet (0 if none)
    10      u16       P: number of ports
    12      u32       N: number of instructions
    16      u16[P]    neighbour chiplet of each port, in port order
            ...       zero bytes up to the next multiple of 16
    R       16*N      the N records; R = 16 + 16*ceil(2P/16); nothing follows them.

Text form (.fsa; printer and parser in backends/fsa.py)
--------------------------------------------------------
Directives first (``.chiplet`` and ``.mode`` are required; ``.channels`` defaults to 0 and
``.ports`` to no ports), then one instruction a line: the mnemonic, then ``key=value`` fields
(and, for WHEN / WHERE, a bare condition / policy word)::

    # fsedpc ISA v1
    .chiplet 0
    .mode static
    .channels 1
    .ports 1 2            # neighbour chiplet of port 0, port 1
    load   ch=0 l=0 s=0 e=5 j=2 bytes=6144
    send   port=1 dir=cw l=0 s=0 e=5 j=2 bytes=6144
    ffn    l=0 s=0 e=5 j=2 tokens=3
    free   l=0 s=0 e=5 j=2
    sync   l=0 s=0
    halt

Keys: ``ch`` / ``port`` (unit), ``dir`` (``cw`` | ``ccw``), ``l`` ``s`` ``e`` ``j`` (layer, step,
expert, shard), ``bytes`` / ``tokens`` / ``n`` (arg). Values are decimal (or ``0x`` hex);
``*`` is CURRENT in a tag field and ANY_UNIT in ``ch`` / ``port``. The printer writes the fields
an opcode uses in a fixed order; the parser accepts them in any order, separated by any
whitespace. In a *dynamic* program the ``l=`` and ``s=`` fields may be omitted and then mean
``*``; the printer omits them when they are ``*`` (so ``streams l=0`` has step CURRENT and a
FOREACH body reads ``send port=* dir=cw e=* j=* bytes=6144``). In a static program every field
is required. ``#`` starts a comment that runs to the end of the line; blank lines are ignored.

Dynamic programs
----------------
A dynamic program does not depend on the routing. ``streams l=L`` asks the controller's
scheduler for the stream table of layer L's next step: one row per stream, in the global order
R6, each (expert, S_e bitmask, direction). ``foreach n=K`` then runs the next K instructions
(counted as records, nested WHEN/WHERE included) once per shard of every stream of the table,
in table order; inside them ``*`` tags name the current shard. ``when COND n=K`` runs the next
K records only when COND holds for this chiplet and the current shard (see `CONDITIONS` for
the trajectory each condition refers to); ``where next`` picks the port towards the next chiplet
of the shard's trajectory, which the following ``send port=*`` uses. The template that
`dataflow` lowers to::

    streams l=0
    foreach n=11
    when   home n=1
    load   ch=* e=* j=* bytes=0
    when   inbound n=1
    recv   port=* e=* j=* bytes=0
    when   member n=1
    ffn    e=* j=* tokens=0
    when   forward n=2
    where  next
    send   port=* dir=cw e=* j=* bytes=0
    when   visit n=1
    free   e=* j=*
    sync   l=0

Inside a FOREACH body an ``arg`` of 0 in LOAD, SEND, RECV (bytes) and FFN (tokens) means "the
current shard's size / the tokens routed to its expert on this chiplet", known only at run
time; SEND's direction bit then comes from the stream table row, not from ``dir``. A dynamic
DENSE with ``tokens=0`` runs on all of the chiplet's current local tokens.

Static programs: stream ranges
------------------------------
A static program starts each layer step with its stream table (STREAM rows, R6 order) and then
gives each engine one *range* instruction per (stream, role) instead of one per shard:
LOADS, SENDS, RECVS, FFNS and FREES stand for `n` LOAD/SEND/RECV/FFN/FREE of the stream's
shards, in a fixed order every chiplet can compute from the table: a shard's trajectory starts
at its DRAM home (shard j of expert e is dealt round-robin over the system's DRAM channels,
as in program.json), walks the virtual ring in the stream's direction, computes at every member
of S_e starting at the first one it reaches and ends at the last. LOADS go in shard order; the
other ranges in *arrival order* at this chiplet: fewer hops from the shard's home first, then
lower shard index. Engines run their ranges in the order of the stream table, so a program is
O(streams x chiplets) records per step however finely experts are sharded.

Baseline programs
-----------------
Strategies other than FSE-DP (EP, TP, DP, ...; program.json names the strategy per layer) are
static programs of single-tile and token instructions: LOAD, SEND/RECV (weight tiles), TOKSEND/
TOKRECV (token groups and outputs, tag ``g``), REDUCE (partial sums, received with TOKRECV), FFN
(``tokens`` = how many tokens the tile is applied to, wherever they came from), ACC, FREE, SYNC.
Their buffers are assigned statically by the compiler (a read into a tile buffer waits for the
last use of the tile the buffer held before), not by R4's free-buffer counts. Those dependencies
are the strategy's task graph (fsedp_compiler/taskgraph.py): the simulator rebuilds it from the
routing and the strategy named in program.json and requires the records to be exactly its
instructions, in order; the records alone do not encode every dependency.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fsedp_compiler.errors import FsedpError

__all__ = [
    # record layout and special values
    "INSTR_DTYPE", "COLUMNS", "RECORD_SIZE", "HEADER_SIZE", "MAGIC", "VERSION",
    "CURRENT", "ANY_UNIT", "MODES", "ENGINES", "ENGINE_OF_OPCODE",
    "CW", "CCW", "DIRECTIONS",
    "WHEN_HOME", "WHEN_MEMBER", "WHEN_FORWARD", "WHEN_LAST", "WHEN_INBOUND", "WHEN_VISIT",
    "CONDITIONS",
    "WHERE_NEXT", "POLICIES",
    # opcodes
    "NOP", "LOAD", "SEND", "RECV", "FFN", "FREE", "ACC", "REDUCE", "DENSE", "SYNC",
    "TOKSEND", "TOKRECV", "STREAMS", "FOREACH", "WHEN", "WHERE", "HALT",
    "STREAM", "LOADS", "SENDS", "RECVS", "FFNS", "FREES",
    "OPS", "OPCODE", "Field", "OpInfo",
    # programs and their two forms
    "Program", "instr", "encode", "decode", "sha256_hex",
]  # fmt: skip

VERSION = 1
MAGIC = b"FSA1"

INSTR_DTYPE = np.dtype(
    [
        ("opcode", "<u1"),
        ("unit", "<u1"),
        ("flags", "<u2"),
        ("layer", "<u2"),
        ("step", "<u2"),
        ("expert", "<u2"),
        ("shard", "<u2"),
        ("arg", "<u4"),
    ]
)
RECORD_SIZE = INSTR_DTYPE.itemsize  # 16
COLUMNS: tuple[str, ...] = INSTR_DTYPE.names  # type: ignore[assignment]

_HEADER = struct.Struct("<4sHHBBHI")  # magic, version, chiplet, mode, channels, ports, count
HEADER_SIZE = _HEADER.size  # 16

CURRENT = 0xFFFF
"""In step/expert/shard (and layer): the current one of the enclosing FOREACH / STREAMS."""
ANY_UNIT = 0xFF
"""In unit: chosen at run time (home channel for LOAD, the WHERE port for SEND, any for RECV)."""

MODES = ("static", "dynamic")
ENGINES = ("dma", "link_out", "link_in", "compute", "control")

CW, CCW = 0, 1
DIRECTIONS = {CW: "cw", CCW: "ccw"}
"""SEND flags bit 0: ring direction on the virtual ring."""
WHEN_HOME, WHEN_MEMBER, WHEN_FORWARD, WHEN_LAST, WHEN_INBOUND, WHEN_VISIT = 1, 2, 3, 4, 5, 6
CONDITIONS = {
    WHEN_HOME: "home",
    WHEN_MEMBER: "member",
    WHEN_FORWARD: "forward",
    WHEN_LAST: "last",
    WHEN_INBOUND: "inbound",
    WHEN_VISIT: "visit",
}
"""WHEN flags: the runtime condition on the current shard (the names of `dataflow.when`).

The shard's *trajectory* is the chiplets it occupies, in order: its DRAM home, then along its
direction on the virtual ring through pass-through chiplets (R3) and every member of S_e, ending
at its last member. home: first chiplet of the trajectory; member: in S_e; forward: on the
trajectory and not its end; last: the end (the last member); inbound: on the trajectory and not
its home (the shard arrives over a link); visit: anywhere on the trajectory.
"""
WHERE_NEXT = 1
POLICIES = {WHERE_NEXT: "next"}
"""WHERE flags: how the port of the following `send port=*` is chosen."""

# Opcode values.
NOP = 0x00
LOAD = 0x01
SEND = 0x02
RECV = 0x03
FFN = 0x04
FREE = 0x05
ACC = 0x06
REDUCE = 0x07
DENSE = 0x08
SYNC = 0x09
TOKSEND = 0x0A
TOKRECV = 0x0B
STREAMS = 0x10
FOREACH = 0x11
WHEN = 0x12
WHERE = 0x13
STREAM = 0x14
HALT = 0x1F
# Stream-range forms (static programs): one record per (stream, role) instead of one per shard.
LOADS = 0x21
SENDS = 0x22
RECVS = 0x23
FFNS = 0x24
FREES = 0x25


class Field(NamedTuple):
    """One field of an opcode: its text key, the record column it lives in, and its kind.

    Kinds: ``channel`` / ``port`` (unit; ``*`` = ANY_UNIT), ``tag`` (u16; ``*`` = CURRENT),
    ``u32`` (arg), ``dir`` (flags bit 0, ``cw``/``ccw``), ``cond`` / ``policy`` (flags, written
    as a bare word).
    """

    key: str
    column: str
    kind: str
    doc: str


class OpInfo(NamedTuple):
    """One opcode: value, lower-case mnemonic, engine, fields (in text order), semantics."""

    value: int
    mnemonic: str
    engine: str
    fields: tuple[Field, ...]
    semantics: str

    @property
    def columns(self) -> frozenset[str]:
        """The record columns this opcode uses (besides `opcode`); all others must be 0."""
        return frozenset(f.column for f in self.fields)


_CH = Field("ch", "unit", "channel", "DRAM channel of this chiplet (* = the shard's home channel)")
_PORT = Field("port", "unit", "port", "port of this chiplet (* = chosen at run time)")
_DIR = Field("dir", "flags", "dir", "ring direction, flags bit 0: cw (0) or ccw (1)")
_L = Field("l", "layer", "tag", "layer")
_S = Field("s", "step", "tag", "layer step")
_E = Field("e", "expert", "tag", "expert")
_J = Field("j", "shard", "tag", "shard of the expert")
_BYTES = Field("bytes", "arg", "u32", "bytes moved")
_TOKENS = Field("tokens", "arg", "u32", "local tokens")
_N = Field("n", "arg", "u32", "number of following instructions (records)")
_COND = Field(
    "cond",
    "flags",
    "cond",
    "condition: home (1), member (2), forward (3), last (4), inbound (5), visit (6)",
)
_POLICY = Field("policy", "flags", "policy", "policy: next (1)")
_G = Field("g", "shard", "tag",
           "token group: source chiplet c (tokens sent to an owner) or N + c (outputs / partial sums for c)")
_COUNT = Field("n", "shard", "tag", "number of shards of expert e the range covers")
_MEMBERS = Field("members", "arg", "u32", "S_e as a bitmask of chiplets (bit c = chiplet c)")
_TAG = (_L, _S, _E, _J)

OPS: dict[int, OpInfo] = {
    op.value: op
    for op in (
        OpInfo(NOP, "nop", "control", (), "Does nothing."),
        OpInfo(
            LOAD,
            "load",
            "dma",
            (_CH, *_TAG, _BYTES),
            "Waits until the chiplet has >= 2 free shard buffers (R4: injection needs two), "
            "takes one and reads the shard's `bytes` from DRAM channel `ch` into it.",
        ),
        OpInfo(
            SEND,
            "send",
            "link_out",
            (_PORT, _DIR, *_TAG, _BYTES),
            "Waits until the shard is present locally and the neighbour on `port` has reserved "
            "a buffer for it (a credit from its RECV), then sends its `bytes` in direction `dir`.",
        ),
        OpInfo(
            RECV,
            "recv",
            "link_in",
            (_PORT, *_TAG, _BYTES),
            "Reserves one free buffer (>= 1 free) for the next shard arriving on `port` and "
            "grants the sender its credit; the shard that arrives must carry this tag.",
        ),
        OpInfo(
            FFN,
            "ffn",
            "compute",
            (*_TAG, _TOKENS),
            "Waits for the shard; computes its partial FFN output for the `tokens` local tokens "
            "routed to the expert, scaled by their gate weights, into their accumulators.",
        ),
        OpInfo(
            FREE,
            "free",
            "control",
            _TAG,
            "Releases the shard's buffer once every earlier use of it on this chiplet has "
            "finished (R5); does not stall the dispatcher.",
        ),
        OpInfo(
            ACC,
            "acc",
            "compute",
            (_L, _S, _E, _G, _TOKENS),
            "Adds the received outputs or partial sums of group `g` of expert `e` into the "
            "accumulators of its `tokens` tokens (strategies that compute away from the tokens).",
        ),
        OpInfo(
            REDUCE,
            "reduce",
            "link_out",
            (_PORT, _L, _S, _E, _G, _BYTES),
            "Sends `bytes` of partial sums of group `g` of expert `e` to the neighbour on `port` "
            "(ring reduce-scatter, tensor parallel); the neighbour takes them with TOKRECV.",
        ),
        OpInfo(
            DENSE,
            "dense",
            "compute",
            (_L, _S, _TOKENS),
            "The non-MoE part of block `l` (attention etc.) for the `tokens` local tokens of "
            "step `s`.",
        ),
        OpInfo(
            SYNC,
            "sync",
            "control",
            (_L, _S),
            "End of layer step (l, s): waits for all local work of that step, then a barrier "
            "with every chiplet.",
        ),
        OpInfo(
            TOKSEND,
            "toksend",
            "link_out",
            (_PORT, _L, _S, _E, _G, _BYTES),
            "Sends `bytes` of token group `g` of expert `e` (activations, outputs) to the neighbour "
            "on `port`, once it is present (expert- and tensor-parallel strategies move tokens).",
        ),
        OpInfo(
            TOKRECV,
            "tokrecv",
            "link_in",
            (_PORT, _L, _S, _E, _G, _BYTES),
            "Receives `bytes` of token group `g` of expert `e` (or, after a REDUCE, its partial "
            "sums) from the neighbour on `port` into a token buffer.",
        ),
        OpInfo(
            STREAMS,
            "streams",
            "control",
            (_L, _S),
            "Dynamic mode: asks the controller's scheduler for the stream table of layer `l`'s "
            "next step (rows in the R6 order: expert, S_e bitmask, direction); s = *.",
        ),
        OpInfo(
            FOREACH,
            "foreach",
            "control",
            (_N,),
            "Repeats the next `n` instructions once per shard of every stream of the current "
            "table, in table order; `*` tags inside name the current shard.",
        ),
        OpInfo(
            WHEN,
            "when",
            "control",
            (_COND, _N),
            "Runs the next `n` instructions only when the condition holds for this chiplet and "
            "the current shard: home (holds its DRAM home), member (in S_e), forward (the "
            "shard goes on after this chiplet), last (its last member), inbound (it arrives "
            "here over a link), visit (on its trajectory).",
        ),
        OpInfo(
            WHERE,
            "where",
            "control",
            (_POLICY,),
            "Sets the port the following `send port=*` uses; next: the next chiplet of the "
            "shard's trajectory along its direction (next member of S_e, via pass-throughs).",
        ),
        OpInfo(
            STREAM,
            "stream",
            "control",
            (_DIR, _L, _S, _E, _MEMBERS),
            "Static mode: one row of step (l, s)'s stream table, in the global order (R6): expert "
            "`e` streams in direction `dir` through the chiplets of `members` (S_e). The range "
            "instructions of the step refer to these rows.",
        ),
        OpInfo(
            LOADS,
            "loads",
            "dma",
            (_CH, _L, _S, _E, _COUNT, _BYTES),
            "LOAD, for each of the `n` shards of `e` homed on channel `ch`, in shard order.",
        ),
        OpInfo(
            SENDS,
            "sends",
            "link_out",
            (_PORT, _DIR, _L, _S, _E, _COUNT, _BYTES),
            "SEND, for each of the `n` shards of `e` this chiplet forwards through `port`, in "
            "arrival order.",
        ),
        OpInfo(
            RECVS,
            "recvs",
            "link_in",
            (_PORT, _L, _S, _E, _COUNT, _BYTES),
            "RECV, for each of the `n` shards of `e` arriving through `port`, in arrival order.",
        ),
        OpInfo(
            FFNS,
            "ffns",
            "compute",
            (_L, _S, _E, _COUNT, _TOKENS),
            "FFN, for each of the `n` shards of `e` (all of them: this chiplet is in S_e), in "
            "arrival order, on the `tokens` local tokens.",
        ),
        OpInfo(
            FREES,
            "frees",
            "control",
            (_L, _S, _E, _COUNT),
            "FREE, for each of the `n` shards of `e` that visit this chiplet, each after its last "
            "local use (R5).",
        ),
        OpInfo(HALT, "halt", "control", (), "End of the program."),
    )
}

OPCODE: dict[str, int] = {info.mnemonic: value for value, info in OPS.items()}
"""Mnemonic (lower case) -> opcode value."""


def _syntax_word(f: Field) -> str:
    if f.kind == "cond":
        return "|".join(CONDITIONS.values())
    if f.kind == "policy":
        return "|".join(POLICIES.values())
    if f.kind == "dir":
        return "dir=cw|ccw"
    return f"{f.key}=N|*" if f.kind in ("tag", "port", "channel") else f"{f.key}=N"


def _opcode_reference() -> str:
    lines = ["", "Opcodes", "-------", "(generated from `OPS`)", ""]
    for value, info in OPS.items():
        text = " ".join(_syntax_word(f) for f in info.fields)
        lines.append(f"``{info.mnemonic}`` 0x{value:02X}  [engine {info.engine}]  {text}".rstrip())
        for f in info.fields:
            lines.append(f"    {f.key:<7}{f.column:<8}{f.doc}")
        lines.append(f"    {info.semantics}")
        lines.append("")
    return "\n".join(lines)


__doc__ = (__doc__ or "") + _opcode_reference()


def _op_table(fn: Callable[[OpInfo], bool]) -> np.ndarray:
    """bool[256] indexed by opcode: `fn` of each known opcode, False for unknown ones."""
    return np.array([bool(fn(OPS[v])) if v in OPS else False for v in range(256)])


_KNOWN = np.array([v in OPS for v in range(256)])
_USES = {c: _op_table(lambda i, c=c: c in i.columns) for c in COLUMNS[1:]}
_PORT_OP = _op_table(lambda i: any(f.kind == "port" for f in i.fields))
_CHANNEL_OP = _op_table(lambda i: any(f.kind == "channel" for f in i.fields))
_FLAG_RANGE = {SEND: (0, 1), SENDS: (0, 1), STREAM: (0, 1), WHEN: (1, max(CONDITIONS)), WHERE: (1, max(POLICIES))}
_FLAG_MIN = np.array([_FLAG_RANGE.get(v, (0, 0))[0] for v in range(256)], dtype=np.int64)
_FLAG_MAX = np.array([_FLAG_RANGE.get(v, (0, 0))[1] for v in range(256)], dtype=np.int64)

ENGINE_OF_OPCODE = np.array(
    [ENGINES.index(OPS[v].engine) if v in OPS else 255 for v in range(256)], dtype=np.uint8
)
"""uint8[256]: index into ENGINES of each opcode's engine (255 for unknown opcodes)."""


def instr(
    opcode: int | str,
    *,
    unit: int = 0,
    flags: int = 0,
    layer: int = 0,
    step: int = 0,
    expert: int = 0,
    shard: int = 0,
    arg: int = 0,
) -> tuple[int, int, int, int, int, int, int, int]:
    """One record as a tuple in `INSTR_DTYPE` order (`np.array(rows, INSTR_DTYPE)` packs many)."""
    op = OPCODE[opcode] if isinstance(opcode, str) else opcode
    return (op, unit, flags, layer, step, expert, shard, arg)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _port_message(mnemonic: str, port: int, nports: int) -> str:
    return f"{mnemonic} references missing port {port}; chiplet has {_plural(nports, 'port')}"


def _channel_message(channel: int, channels: int) -> str:
    return (
        f"load references missing DRAM channel {channel}; "
        f"chiplet has {_plural(channels, 'DRAM channel')}"
    )


def _find_problem(instrs: np.ndarray, nports: int, channels: int) -> tuple[int, str] | None:
    """The first invalid record (index, message), checked with whole-array numpy operations."""
    if len(instrs) == 0:
        return None
    op = instrs["opcode"]
    unit = instrs["unit"]
    flags = instrs["flags"].astype(np.int64)
    bad = ~_KNOWN[op]
    for c, uses in _USES.items():
        bad |= (instrs[c] != 0) & ~uses[op]
    bad |= (flags < _FLAG_MIN[op]) | (flags > _FLAG_MAX[op])
    bad |= _PORT_OP[op] & (unit != ANY_UNIT) & (unit >= nports)
    bad |= _CHANNEL_OP[op] & (unit != ANY_UNIT) & (unit >= channels)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    rec = {c: int(instrs[c][i]) for c in COLUMNS}
    code = rec["opcode"]
    if code not in OPS:
        return i, f"unknown opcode 0x{code:02x}"
    info = OPS[code]
    name = info.mnemonic
    for c in COLUMNS[1:]:
        if rec[c] and c not in info.columns:
            return i, f"{name} does not use field '{c}', which must be 0 (is {rec[c]})"
    lo, hi = _FLAG_RANGE.get(code, (0, 0))
    if not lo <= rec["flags"] <= hi:
        if code in (SEND, SENDS, STREAM):
            return i, f"{name} flags must be 0 (cw) or 1 (ccw), not {rec['flags']}"
        names = CONDITIONS if code == WHEN else POLICIES
        known = ", ".join(f"{k} {v}" for k, v in names.items())
        what = "condition" if code == WHEN else "policy"
        return i, f"{name} has unknown {what} {rec['flags']} (flags: {known})"
    if _PORT_OP[code]:
        return i, _port_message(name, rec["unit"], nports)
    return i, _channel_message(rec["unit"], channels)


@dataclass(frozen=True, eq=False)
class Program:
    """The instruction stream of one chiplet.

    `ports[p]` is the neighbour chiplet reached through port p; `channels` is the number of
    DRAM channels on this chiplet (0 if none); `instrs` is a 1-D `INSTR_DTYPE` array (a list
    of `instr(...)` tuples is converted). Construction checks every record (ValueError).
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
        if len(ports) > 0xFFFF or any(not 0 <= p <= 0xFFFF for p in ports):
            raise ValueError(f"ports must be at most 65535 chiplet numbers 0..65535: {ports}")
        if not 0 <= int(self.channels) <= 0xFF:
            raise ValueError(f"channels {self.channels} out of range 0..255")
        instrs = self.instrs
        if not (isinstance(instrs, np.ndarray) and instrs.dtype == INSTR_DTYPE):
            instrs = np.array(instrs, dtype=INSTR_DTYPE)
        if instrs.ndim != 1:
            raise ValueError(f"instrs must be 1-D, not shape {instrs.shape}")
        if len(instrs) > 0xFFFFFFFF:
            raise ValueError("more than 2**32 - 1 instructions")
        instrs = np.ascontiguousarray(instrs)
        object.__setattr__(self, "chiplet", int(self.chiplet))
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "channels", int(self.channels))
        object.__setattr__(self, "instrs", instrs)
        problem = _find_problem(instrs, len(ports), self.channels)
        if problem is not None:
            i, msg = problem
            raise ValueError(f"chiplet {self.chiplet}: instruction {i}: {msg}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (
            self.chiplet == other.chiplet
            and self.mode == other.mode
            and self.ports == other.ports
            and self.channels == other.channels
            and np.array_equal(self.instrs, other.instrs)
        )

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.instrs)

    def __repr__(self) -> str:
        return (
            f"Program(chiplet={self.chiplet}, mode={self.mode!r}, ports={self.ports}, "
            f"channels={self.channels}, instrs=<{len(self.instrs)} instructions>)"
        )


# --------------------------------------------------------------------------- binary form


def _ports_size(nports: int) -> int:
    """Bytes of the port table including its zero padding to a multiple of 16."""
    return -(-2 * nports // 16) * 16


def encode(p: Program) -> bytes:
    """The `.bin` bytes of `p` (layout in the module docstring)."""
    nports = len(p.ports)
    header = _HEADER.pack(
        MAGIC, VERSION, p.chiplet, MODES.index(p.mode), p.channels, nports, len(p.instrs)
    )
    table = np.asarray(p.ports, dtype="<u2").tobytes()
    table += bytes(_ports_size(nports) - len(table))
    return b"".join((header, table, p.instrs.tobytes()))


def decode(data: bytes, path: str = "<bytes>") -> Program:
    """Parse `.bin` bytes; any defect is an `FsedpError` naming `path` and the byte offset."""
    data = bytes(data) if not isinstance(data, bytes) else data
    size = len(data)

    def fail(offset: int, message: str) -> FsedpError:
        return FsedpError(f"byte offset {offset}: {message}", path=path)

    if data[:4] != MAGIC[: min(size, 4)] or size == 0:
        if size == 0:
            raise fail(0, f"truncated header: file is empty, the header is {HEADER_SIZE} bytes")
        raise fail(0, f"bad magic {data[:4]!r}: not an fsedpc ISA binary (expected {MAGIC!r})")
    if size < HEADER_SIZE:
        raise fail(size, f"truncated header: {size} bytes, the header is {HEADER_SIZE} bytes")
    _, version, chiplet, mode, channels, nports, count = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise fail(4, f"unsupported ISA version {version} (this fsedpc reads version {VERSION})")
    if mode >= len(MODES):
        raise fail(8, f"bad mode byte {mode} (0 static, 1 dynamic)")
    start = HEADER_SIZE + _ports_size(nports)
    if size < start:
        raise fail(
            size,
            f"truncated header: the port table of {nports} ports ends at byte {start}, "
            f"file has {size} bytes",
        )
    ports = np.frombuffer(data, dtype="<u2", count=nports, offset=HEADER_SIZE)
    pad_from = HEADER_SIZE + 2 * nports
    if any(data[pad_from:start]):
        nonzero = pad_from + next(i for i, b in enumerate(data[pad_from:start]) if b)
        raise fail(nonzero, "nonzero padding after the port table")
    need = start + RECORD_SIZE * count
    if size < need:
        have = (size - start) // RECORD_SIZE
        raise fail(
            size,
            f"truncated records: the header says {count} instructions ({RECORD_SIZE * count} "
            f"bytes from byte {start}), only {size - start} bytes follow "
            f"({have} whole instructions)",
        )
    if size > need:
        raise fail(need, f"{_plural(size - need, 'trailing byte')} after {count} instructions")
    instrs = np.frombuffer(data, dtype=INSTR_DTYPE, count=count, offset=start)
    problem = _find_problem(instrs, nports, channels)
    if problem is not None:
        i, msg = problem
        raise fail(start + RECORD_SIZE * i, f"instruction {i}: {msg}")
    return Program(chiplet, MODES[mode], tuple(ports.tolist()), channels, instrs)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as lower-case hex (content hashes of emitted programs)."""
    return hashlib.sha256(data).hexdigest()
