"""The FSA v3 record layout and opcode table: one source for the codec, the text form and docs/isa.md.

Every instruction is one 32-byte little-endian record (`INSTR_DTYPE`). The columns are generic
slots; `OPS` says, per opcode, which named field lives in which column, so the binary codec,
the `.fsa` printer and parser, the validator and the reference in docs/isa.md all read the
same table and cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

VERSION = 3
MAGIC = b"FSA3"

INSTR_DTYPE = np.dtype(
    [
        ("opcode", "<u1"),
        ("unit", "<u1"),
        ("x", "<u2"),
        ("layer", "<u2"),
        ("step", "<u2"),
        ("expert", "<u2"),
        ("shard", "<u2"),
        ("y", "<u2"),
        ("z", "<u2"),
        ("n", "<u4"),
        ("arg", "<u4"),
        ("wide", "<u8"),
    ]
)
RECORD_SIZE = INSTR_DTYPE.itemsize  # 32
COLUMNS: tuple[str, ...] = INSTR_DTYPE.names  # type: ignore[assignment]
COLUMN_MAX = {name: (1 << (8 * INSTR_DTYPE.fields[name][0].itemsize)) - 1 for name in COLUMNS}

CURRENT = 0xFFFF
"""`*` in a tag field (l, s, e, j, g): the current layer / step / expert / shard (dynamic programs)."""
ALL_EXPERTS = CURRENT
"""`e=*` on a task program's TOKSEND, TOKRECV, REDUCE or ACC: the rows are of a chiplet's whole token
set (every expert's tokens together, each once), not of one expert's group (tensor parallel)."""
ANY_UNIT = 0xFF
"""`*` in ch / port: chosen at run time (the shard's home channel, the WHERE port, any port)."""
ANY_ADDR = 0xFFFF_FFFF_FFFF_FFFF
"""`*` in addr: the current shard's DRAM address (dynamic programs)."""

MODES = ("static", "dynamic")
ENGINES = ("dma", "link_out", "link_in", "compute", "control")

CW, CCW, SHORT, SHORT_CCW = 0, 1, 2, 3
DIRECTIONS = {CW: "cw", CCW: "ccw", SHORT: "short", SHORT_CCW: "short-ccw"}
WHEN_HOME, WHEN_MEMBER, WHEN_FORWARD, WHEN_LAST, WHEN_INBOUND, WHEN_VISIT = 1, 2, 3, 4, 5, 6
CONDITIONS = {
    WHEN_HOME: "home",
    WHEN_MEMBER: "member",
    WHEN_FORWARD: "forward",
    WHEN_LAST: "last",
    WHEN_INBOUND: "inbound",
    WHEN_VISIT: "visit",
}
WHERE_NEXT = 1
POLICIES = {WHERE_NEXT: "next"}

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
WAIT = 0x0C
JOIN = 0x0D
STREAMS = 0x10
FOREACH = 0x11
WHEN = 0x12
WHERE = 0x13
STREAM = 0x14
MASK = 0x15
TABLE = 0x16
HALT = 0x1F
LOADS = 0x21
SENDS = 0x22
RECVS = 0x23
FFNS = 0x24
FREES = 0x25


class Field(NamedTuple):
    """One field of an opcode: text key, record column, kind, and what it means.

    Kinds: ``channel`` / ``port`` (unit, ``*`` = ANY_UNIT), ``tag`` (u16, ``*`` = CURRENT),
    ``chiplet`` / ``u16`` / ``u32`` (plain numbers), ``addr`` (u64 printed in hex, ``*`` =
    ANY_ADDR), ``mask`` (a chiplet set of any width, printed in hex), ``id`` (u32, optional in
    text: omitted means 0, "no id"), ``flag`` (0 or 1, optional: printed only when 1), ``ring`` (u8, optional: printed only when not 0), ``dir`` (``cw`` | ``ccw`` | ``short`` | ``short-ccw``), ``cond`` / ``policy`` (a bare word).
    """

    key: str
    column: str
    kind: str
    doc: str


class OpInfo(NamedTuple):
    """One opcode: value, mnemonic, engine, program kind, fields in text order, semantics."""

    value: int
    mnemonic: str
    engine: str
    kind: str
    """Where it may appear: ``any``, ``stream`` (static FSE-DP steps), ``dynamic`` (templates),
    ``task`` (static task programs: baselines)."""
    fields: tuple[Field, ...]
    semantics: str

    @property
    def columns(self) -> frozenset[str]:
        """The record columns this opcode uses (besides `opcode`); all others must be 0."""
        cols = {f.column for f in self.fields}
        if any(f.kind == "mask" for f in self.fields):
            cols.add("n")  # the number of MASK continuation records
        return frozenset(cols)


_CH = Field("ch", "unit", "channel", "DRAM channel of this chiplet (`*`: the shard's home channel)")
_PORT = Field("port", "unit", "port", "port of this chiplet (`*`: chosen at run time)")
_DIR = Field("dir", "x", "dir", "ring direction on the virtual ring: `cw` (0), `ccw` (1), `short` (2: each "
             "shard the way round from its home that walks fewer links, equal ways `cw`) or `short-ccw` (3: "
             "equal ways `ccw`)")
_RING = Field("ring", "unit", "ring", "which virtual ring the stream follows (0, omitted: R1's ring; the target's "
              "further edge-disjoint rings follow in program.json's `target.rings`)")
_L = Field("l", "layer", "tag", "layer (decoder block index)")
_S = Field("s", "step", "tag", "layer step")
_E = Field("e", "expert", "tag", "expert (routed 0..E-1, shared E..E+S-1)")
_TOKE = Field("e", "expert", "tag",
              "expert (routed 0..E-1, shared E..E+S-1); `*`: every expert (whole token sets, task programs)")
_J = Field("j", "shard", "tag", "shard (tile) of the expert")
_J0 = Field("j", "shard", "u16", "first shard of the range")
_G = Field("g", "shard", "u16", "token group: c = tokens of chiplet c, N + c = partial outputs for chiplet c "
                                "(of expert `e`; `e=*`: all of c's tokens, partial outputs summed over experts)")
_ROW = Field("row", "y", "u16", "first row of the group the data covers")
_ROWS = Field("tokens", "z", "u16", "rows (tokens) of the group the data covers")
_STRIDE = Field("stride", "y", "u16", "shard index step between elements (the layout's channel interleave)")
_ENTRY = Field("entry", "z", "chiplet", "chiplet where the shards start computing (their first member)")
_END = Field("end", "x", "chiplet", "chiplet where the shards' trajectory ends")
_N = Field("n", "n", "u32", "elements of the range")
_NREC = Field("n", "n", "u32", "number of following records the instruction governs")
_ID = Field("id", "n", "id", "task id (task programs; 1-based, unique in the layer step over all chiplets)")
_WAIT_ID = Field("id", "n", "u32", "task id waited for")
_BYTES = Field("bytes", "arg", "u32", "bytes moved (0 in a FOREACH body: the current shard's size)")
_TOKENS = Field("tokens", "arg", "u32", "token rows computed (0 in a FOREACH body: the local group's size)")
_ADDR = Field("addr", "wide", "addr", "DRAM byte address (of the first element of a range)")
_MEMBERS = Field("members", "wide", "mask", "S_e: the chiplets needing the expert (bit c = chiplet c)")
_TABLE_N = Field("n", "n", "u32", "streams (STREAM rows) in the step's table")
_COND = Field("cond", "x", "cond", "condition: home, member, forward, last, inbound, visit")
_POLICY = Field("policy", "x", "policy", "policy: next")
_WORD = Field("word", "n", "u32", "which 64 chiplets: bits of chiplets 64*word .. 64*word+63")
_BITS = Field("bits", "wide", "addr", "the member bits of those chiplets")
_KEEP = Field("keep", "x", "flag", "1: the tile stays resident after its readers (a cache) until a FREE")
_SETS = Field("sets", "x", "flag", "1: the rows of whole token sets (`e=*`) routed to `e`; 0: the groups of `e` "
                                   "(task programs)")
_TAG = (_L, _S, _E, _J)
_TOKTAG = (_L, _S, _TOKE, _G, _ROW, _ROWS)

OPS: dict[int, OpInfo] = {
    op.value: op
    for op in (
        OpInfo(NOP, "nop", "control", "any", (), "Does nothing."),
        OpInfo(LOAD, "load", "dma", "any", (_CH, *_TAG, _ID, _BYTES, _ADDR, _KEEP),
               "Reads shard `j` of expert `e` (`bytes` at `addr` on channel `ch`) into a shard buffer. "
               "Stream programs: waits for two free buffers that no virtual network holds (R4); task programs: "
               "waits for its WAITs. The layout must hold exactly that shard at that address."),
        OpInfo(SEND, "send", "link_out", "any", (_PORT, *_TAG, _ID, _BYTES),
               "Sends the shard present in a local buffer to the neighbour on `port`, once the "
               "neighbour admits it (R4: a free buffer the other networks do not hold) and has posted a receive for it. "
               "A shard that goes on from the neighbour is forwarded from there once its first 4 KiB packet "
               "has arrived (R7, cut-through)."),
        OpInfo(RECV, "recv", "link_in", "any", (_PORT, *_TAG, _ID, _BYTES),
               "Posts a receive on `port` for the shard with this tag (task programs: of transfer "
               "`id`); the arriving data must match the tag and `bytes`."),
        OpInfo(FFN, "ffn", "compute", "any", (*_TAG, _ID, _TOKENS, _SETS),
               "Applies the shard present in a local buffer to the `tokens` token rows of expert `e` "
               "present on this chiplet, scaled by their gates: its own tokens routed to `e`, and the "
               "groups of `e` it received (`sets=1`: the rows routed to `e` of the whole token sets it "
               "received). Rows of local tokens accumulate into the outputs, other rows into this "
               "chiplet's partial outputs for their owner (`sets=1`: summed over experts)."),
        OpInfo(FREE, "free", "control", "any", (*_TAG, _ID),
               "Releases the shard's buffer after every earlier local use of it has finished (R5); "
               "in a task program, releases a kept tile of layer `l` once its WAITs are met."),
        OpInfo(ACC, "acc", "compute", "task", (*_TOKTAG, _ID),
               "Adds the received partial rows (e, g, row) into the outputs of this chiplet's tokens "
               "when g = N + this chiplet, else into this chiplet's partial outputs for g - N "
               "(`e=*`: the partial outputs summed over experts)."),
        OpInfo(REDUCE, "reduce", "link_out", "task", (_PORT, *_TOKTAG, _ID, _BYTES),
               "Sends rows [row, row+tokens) of this chiplet's partial outputs for chiplet g - N of "
               "expert `e` (`e=*`: summed over experts, rows of g - N's whole token set) to the "
               "neighbour on `port` (the receiver takes them with TOKRECV)."),
        OpInfo(DENSE, "dense", "compute", "any", (_L, _S, _TOKENS),
               "The non-MoE part of block `l` (attention etc.) on `tokens` local tokens "
               "(0 in a dynamic program: all of them)."),
        OpInfo(SYNC, "sync", "control", "any", (_L, _S),
               "Barrier: waits for every earlier instruction of this chiplet, then for every "
               "chiplet to reach its matching SYNC."),
        OpInfo(TOKSEND, "toksend", "link_out", "task", (_PORT, *_TOKTAG, _ID, _BYTES),
               "Sends rows [row, row+tokens) of token group `g` of expert `e` (`e=*`: chiplet g's whole "
               "token set, in token order) to the neighbour on `port`: this chiplet's own tokens when g "
               "is this chiplet, else rows it received."),
        OpInfo(TOKRECV, "tokrecv", "link_in", "task", (_PORT, *_TOKTAG, _ID, _BYTES),
               "Posts a receive on `port` for transfer `id`, which must carry token or partial rows "
               "(e, g, row, tokens) and `bytes`."),
        OpInfo(WAIT, "wait", "control", "task", (_WAIT_ID,),
               "The next instruction that is not a WAIT starts only once task `id` of this layer "
               "step (on any chiplet) has its result usable."),
        OpInfo(JOIN, "join", "control", "task", (_L, _S, _ID),
               "A task without work: its result is usable as soon as every task its WAITs name has "
               "its result usable. Waiting on it waits on all of those, and their buffers stay held "
               "until every task waiting on the join has its result usable (m tiles needed by m FFNs: "
               "2m waits, not m x m)."),
        OpInfo(STREAMS, "streams", "control", "dynamic", (_L, _S),
               "Asks the controller for layer `l`'s stream table of the current step (rows in the "
               "global order, R6); the controller's scheduler latency is charged here."),
        OpInfo(FOREACH, "foreach", "control", "dynamic", (_NREC,),
               "Runs the next `n` records once per visit of every shard of the current table to "
               "this chiplet, in table order then shard order; `*` names the current shard."),
        OpInfo(WHEN, "when", "control", "dynamic", (_COND, _NREC),
               "Runs the next `n` records only when the condition holds for the current shard's "
               "visit to this chiplet."),
        OpInfo(WHERE, "where", "control", "dynamic", (_POLICY,),
               "Sets the port of the following `send port=*`: next = towards the next chiplet of "
               "the shard's trajectory."),
        OpInfo(STREAM, "stream", "control", "stream", (_DIR, _RING, _L, _S, _E, _MEMBERS),
               "One row of a step's stream table (global order, R6): expert `e` streams on virtual "
               "ring `ring` in direction `dir` through S_e = `members`. Static programs keep the tables "
               "once, in the shared stream-table file (`streams.bin`), not in a chiplet's program."),
        OpInfo(MASK, "mask", "control", "stream", (_WORD, _BITS),
               "Continuation of the preceding STREAM's member set: 64 more chiplets per record "
               "(binary only; the text form prints the whole set on the stream line)."),
        OpInfo(TABLE, "table", "control", "stream", (_L, _S, _TABLE_N),
               "Opens a static step: layer `l` step `s` runs the stream table the program directory stores "
               "once for every chiplet (`streams.bin`, R6: one global order), which must hold `n` streams "
               "for that step. The step's ranges follow."),
        OpInfo(LOADS, "loads", "dma", "stream",
               (_CH, _L, _S, _E, _J0, _STRIDE, _N, _BYTES, _ADDR, _ENTRY, _END),
               "LOAD of shards j, j+stride, ... (`n` of them) of expert `e` from consecutive "
               "addresses from `addr` on channel `ch`; each starts its trajectory here, computes "
               "from `entry` on and ends at `end`."),
        OpInfo(SENDS, "sends", "link_out", "stream", (_PORT, _L, _S, _E, _N, _BYTES),
               "SEND of `n` shards of expert `e` that go on past this chiplet, in arrival order."),
        OpInfo(RECVS, "recvs", "link_in", "stream", (_PORT, _L, _S, _E, _N, _BYTES),
               "Posts `n` receives on `port` for shards of expert `e`."),
        OpInfo(FFNS, "ffns", "compute", "stream", (_L, _S, _E, _N, _TOKENS),
               "FFN of `n` shards of expert `e`, in arrival order, each on the `tokens` local rows."),
        OpInfo(FREES, "frees", "control", "stream", (_L, _S, _E, _N),
               "FREE of `n` shards of expert `e`, each after its last local use (R5)."),
        OpInfo(HALT, "halt", "control", "any", (), "End of the program."),
    )
}

OPCODE: dict[str, int] = {info.mnemonic: value for value, info in OPS.items()}
"""Mnemonic -> opcode value."""

ENGINE_OF_OPCODE = np.array(
    [ENGINES.index(OPS[v].engine) if v in OPS else 255 for v in range(256)], dtype=np.uint8
)
"""uint8[256]: index into ENGINES of each opcode's engine (255 for unknown opcodes)."""

RANGES = frozenset({LOADS, SENDS, RECVS, FFNS, FREES})
TRANSFERS = frozenset({SEND, TOKSEND, REDUCE})
RECEIVES = frozenset({RECV, TOKRECV})


def instr(opcode: int | str, **fields: int) -> tuple[int, ...]:
    """One record as a tuple in column order, from column names (`np.array(rows, INSTR_DTYPE)`)."""
    rec = dict.fromkeys(COLUMNS, 0)
    rec["opcode"] = OPCODE[opcode] if isinstance(opcode, str) else opcode
    for name, value in fields.items():
        rec[name] = value
    return tuple(rec[c] for c in COLUMNS)


_KEY_INDEX = {value: {f.key: COLUMNS.index(f.column) for f in info.fields} for value, info in OPS.items()}


def record(opcode: int | str, **values: int) -> tuple[int, ...]:
    """One record as a tuple in column order, from the opcode's *text keys* (e.g. `j=`, `entry=`)."""
    code = OPCODE[opcode] if isinstance(opcode, str) else opcode
    index = _KEY_INDEX[code]
    rec = [code, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for key, value in values.items():
        rec[index[key]] = value
    return tuple(rec)
