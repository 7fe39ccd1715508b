"""The per-chiplet ISA (FSA v3): binary and text round trips, goldens, and every decode / parse error."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler import isa
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.isa import ANY_ADDR, ANY_UNIT, CCW, CONDITIONS, CURRENT, CW, ENGINES, INSTR_DTYPE, OPCODE, OPS, WHEN_FORWARD, WHEN_HOME, WHEN_INBOUND, WHEN_MEMBER, WHEN_VISIT, WHERE_NEXT, Program, decode, encode, parse_text, sha256_hex, to_text
from fsedp_compiler.isa import record as r
from fsedp_compiler.isa.reference import BEGIN, END, render

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- random programs

_TAG = st.one_of(st.just(CURRENT), st.integers(0, 8), st.integers(0, 0xFFFF))
_U16 = st.one_of(st.integers(0, 10), st.integers(0, 0xFFFF))
_U32 = st.one_of(st.integers(0, 10), st.just(0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
_U64 = st.one_of(st.just(ANY_ADDR), st.integers(0, 2**64 - 1))


@st.composite
def _records(draw: st.DrawFn, nports: int, channels: int) -> list[tuple[int, ...]]:
    """One instruction: one record, or a STREAM and its MASK records (sets wider than 64)."""
    info = OPS[draw(st.sampled_from(sorted(v for v in OPS if v != isa.MASK)))]
    rec = dict.fromkeys(isa.COLUMNS, 0)
    rec["opcode"] = info.value
    extra: list[tuple[int, ...]] = []
    for field in info.fields:
        kind = field.kind
        if kind == "tag":
            value = draw(_TAG)
        elif kind == "port":
            value = draw(st.sampled_from([*range(nports), ANY_UNIT]))
        elif kind == "channel":
            value = draw(st.sampled_from([*range(channels), ANY_UNIT]))
        elif kind in ("u16", "chiplet"):
            value = draw(_U16)
        elif kind in ("u32", "id"):
            value = draw(_U32)
            if info.value == isa.WAIT:
                value = max(value, 1)
        elif kind == "addr":
            value = draw(_U64)
        elif kind == "flag":
            value = draw(st.integers(0, 1))
        elif kind == "mask":
            members = draw(st.one_of(st.integers(1, 2**64 - 1), st.integers(1, 2**300)))
            value = members & (2**64 - 1)
            words = []
            rest = members >> 64
            while rest:
                words.append(rest & (2**64 - 1))
                rest >>= 64
            rec["n"] = len(words)
            extra = [isa.instr("mask", n=w, wide=bits) for w, bits in enumerate(words, 1)]
        elif kind == "dir":
            value = draw(st.sampled_from([CW, CCW]))
        elif kind == "cond":
            value = draw(st.sampled_from(sorted(CONDITIONS)))
        else:
            value = WHERE_NEXT
        rec[field.column] = value
    return [tuple(rec[c] for c in isa.COLUMNS), *extra]


@st.composite
def programs(draw: st.DrawFn, max_instrs: int = 30) -> Program:
    nports = draw(st.integers(0, 9))
    ports = tuple(draw(st.lists(st.integers(0, 0xFFFF), min_size=nports, max_size=nports)))
    channels = draw(st.one_of(st.integers(0, 4), st.integers(0, 255)))
    rows = [rec for group in draw(st.lists(_records(nports, channels), max_size=max_instrs)) for rec in group]
    return Program(draw(st.integers(0, 0xFFFF)), draw(st.sampled_from(isa.MODES)), ports, channels,
                   np.array(rows, dtype=INSTR_DTYPE) if rows else np.zeros(0, INSTR_DTYPE))


@settings(max_examples=250, deadline=None)
@given(programs())
def test_binary_round_trip(p: Program) -> None:
    data = encode(p)
    assert decode(data) == p
    assert encode(decode(data)) == data
    assert len(data) == isa.header_size(len(p.ports)) + 32 * len(p.instrs)
    assert isa.header_size(len(p.ports)) % 32 == 0


@settings(max_examples=250, deadline=None)
@given(programs())
def test_text_round_trip(p: Program) -> None:
    text = to_text(p)
    assert parse_text(text, "t.fsa") == p
    assert to_text(parse_text(text)) == text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_instrs=12), st.sampled_from([" ", "\t", "  \t "]), st.booleans())
def test_text_is_whitespace_insensitive(p: Program, sep: str, comments: bool) -> None:
    lines = []
    for line in to_text(p).splitlines():
        line = sep.join(line.split())
        if comments and line and not line.startswith("#"):
            line = f"{sep}{line}{sep}# note{sep}"
            lines.append("")
        lines.append(line)
    assert parse_text("\r\n".join(lines)) == p


@settings(max_examples=200, deadline=None)
@given(programs(max_instrs=6), st.data())
def test_corrupt_binary_is_rejected_cleanly(p: Program, data: st.DataObject) -> None:
    raw = bytearray(encode(p))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255))
    try:
        q = decode(bytes(raw), "x.bin")
    except FsedpError as err:
        assert str(err).startswith("x.bin: error: byte offset ")
    else:
        assert encode(q) == bytes(raw)


def test_million_instruction_binary_round_trip() -> None:
    n = 1_000_000
    rng = np.random.default_rng(7)
    a = np.zeros(n, INSTR_DTYPE)
    codes = np.array(sorted(v for v in OPS if v not in (isa.MASK, isa.STREAM, isa.WAIT)), dtype=np.uint8)
    a["opcode"] = rng.choice(codes, n)
    for column in ("layer", "step", "expert", "shard", "y", "z"):
        a[column] = rng.integers(0, 0x10000, n)
    a["n"] = rng.integers(0, 2**32, n, dtype=np.uint64)
    a["arg"] = rng.integers(0, 2**32, n, dtype=np.uint64)
    a["wide"] = rng.integers(0, 2**63, n, dtype=np.uint64)
    a["unit"] = rng.choice(np.array([0, 1, ANY_UNIT], dtype=np.uint8), n)
    op = a["opcode"]
    a["x"] = np.select([op == isa.WHEN, op == isa.WHERE, (op == isa.LOAD) | (op == isa.FFN)],
                       [rng.integers(1, 5, n), np.ones(n, np.int64), rng.integers(0, 2, n)], rng.integers(0, 9, n))
    for column in isa.COLUMNS[1:]:
        uses = np.array([v in OPS and column in OPS[v].columns for v in range(256)])
        a[column][~uses[op]] = 0
    p = Program(3, "dynamic", (2, 4), 2, a)
    data = encode(p)
    assert len(data) == 32 + 32 * n
    assert decode(data) == p


def test_wide_member_sets_round_trip() -> None:
    members = (1 << 127) | (1 << 64) | 0b101
    text = (".chiplet 0\n.mode static\nstream dir=cw l=0 s=0 e=1 members=" + hex(members) + "\nhalt\n")
    p = parse_text(text)
    assert [OPS[int(o)].mnemonic for o in p.instrs["opcode"]] == ["stream", "mask", "halt"]
    assert isa.stream_members(p.instrs, 0) == members
    assert decode(encode(p)) == p and parse_text(to_text(p)) == p
    assert f"members={members:#x}" in to_text(p)
    bad = p.instrs.copy()
    bad["n"][1] = 2  # the mask record claims to be word 2
    with pytest.raises(ValueError, match="stream announces 1 mask records; record 1 is not mask word 1"):
        Program(0, "static", (), 0, bad)
    with pytest.raises(ValueError, match="mask record outside a stream's member set"):
        Program(0, "static", (), 0, [isa.instr("mask", n=1, wide=1)])


# --------------------------------------------------------------------------- goldens

C = CURRENT
GOLDEN_STATIC = Program(0, "static", (1, 3), 2, [
    r("dense", l=0, s=0, tokens=4),
    r("sync", l=0, s=0),
    r("stream", dir=CW, l=0, s=0, e=5, members=0b1011),
    r("stream", dir=CCW, l=0, s=0, e=3, members=0b0001),
    r("loads", ch=1, l=0, s=0, e=5, j=1, stride=8, n=2, bytes=6144, addr=0x7800, entry=0, end=3),
    r("sends", port=0, l=0, s=0, e=5, n=5, bytes=6144),
    r("ffns", l=0, s=0, e=5, n=16, tokens=3),
    r("frees", l=0, s=0, e=5, n=16),
    r("recvs", port=1, l=0, s=0, e=3, n=14, bytes=6144),
    r("ffns", l=0, s=0, e=3, n=16, tokens=1),
    r("frees", l=0, s=0, e=3, n=16),
    r("sync", l=0, s=0),
    r("nop"),
    r("halt"),
])
GOLDEN_TASKS = Program(2, "static", (0, 3), 1, [
    r("load", ch=0, l=1, s=0, e=6, j=2, id=1, bytes=6144, addr=0x3000),
    r("wait", id=1),
    r("send", port=1, l=1, s=0, e=6, j=2, id=2, bytes=6144),
    r("recv", port=0, l=1, s=0, e=6, j=0, id=3, bytes=6144),
    r("tokrecv", port=0, l=1, s=0, e=6, g=0, row=0, tokens=2, id=4, bytes=256),
    r("wait", id=3),
    r("wait", id=4),
    r("ffn", l=1, s=0, e=6, j=0, id=5, tokens=3),
    r("wait", id=5),
    r("reduce", port=0, l=1, s=0, e=6, g=4, row=0, tokens=2, id=6, bytes=512),
    r("tokrecv", port=1, l=1, s=0, e=6, g=6, row=16, tokens=1, id=7, bytes=256),
    r("wait", id=7),
    r("acc", l=1, s=0, e=6, g=6, row=16, tokens=1, id=8),
    r("load", ch=0, l=1, s=0, e=7, j=0, id=9, bytes=6144, addr=0x6000, keep=1),
    r("free", l=1, s=0, e=1, j=0, id=10),
    r("sync", l=1, s=0),
    r("halt"),
])
GOLDEN_DYNAMIC = Program(1, "dynamic", (0, 2), 1, [
    r("dense", l=0, s=C, tokens=0),
    r("sync", l=0, s=C),
    r("streams", l=0, s=C),
    r("foreach", n=11),
    r("when", cond=WHEN_HOME, n=1),
    r("load", ch=ANY_UNIT, l=0, s=C, e=C, j=C, addr=ANY_ADDR),
    r("when", cond=WHEN_INBOUND, n=1),
    r("recv", port=ANY_UNIT, l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_MEMBER, n=1),
    r("ffn", l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_FORWARD, n=2),
    r("where", policy=WHERE_NEXT),
    r("send", port=ANY_UNIT, l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_VISIT, n=1),
    r("free", l=0, s=C, e=C, j=C),
    r("sync", l=0, s=C),
    r("halt"),
])


GOLDEN_STATIC_TEXT = """\
# fsedpc ISA v3
.chiplet 0
.mode static
.channels 2
.ports 1 3            # neighbour chiplet of port 0, port 1
dense   l=0 s=0 tokens=4
sync    l=0 s=0
stream  dir=cw l=0 s=0 e=5 members=0xb
stream  dir=ccw l=0 s=0 e=3 members=0x1
loads   ch=1 l=0 s=0 e=5 j=1 stride=8 n=2 bytes=6144 addr=0x7800 entry=0 end=3
sends   port=0 l=0 s=0 e=5 n=5 bytes=6144
ffns    l=0 s=0 e=5 n=16 tokens=3
frees   l=0 s=0 e=5 n=16
recvs   port=1 l=0 s=0 e=3 n=14 bytes=6144
ffns    l=0 s=0 e=3 n=16 tokens=1
frees   l=0 s=0 e=3 n=16
sync    l=0 s=0
nop
halt
"""

GOLDEN_STATIC_HEX = (
    "4653413303000000000202000e00000001000300000000000000000000000000"
    "0800000000000000000000000000000000000000040000000000000000000000"
    "0900000000000000000000000000000000000000000000000000000000000000"
    "1400000000000000050000000000000000000000000000000b00000000000000"
    "1400010000000000030000000000000000000000000000000100000000000000"
    "2101030000000000050001000800000002000000001800000078000000000000"
    "2200000000000000050000000000000005000000001800000000000000000000"
    "2400000000000000050000000000000010000000030000000000000000000000"
    "2500000000000000050000000000000010000000000000000000000000000000"
    "230100000000000003000000000000000e000000001800000000000000000000"
    "2400000000000000030000000000000010000000010000000000000000000000"
    "2500000000000000030000000000000010000000000000000000000000000000"
    "0900000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)

GOLDEN_TASKS_TEXT = """\
# fsedpc ISA v3
.chiplet 2
.mode static
.channels 1
.ports 0 3            # neighbour chiplet of port 0, port 1
load    ch=0 l=1 s=0 e=6 j=2 id=1 bytes=6144 addr=0x3000
wait    id=1
send    port=1 l=1 s=0 e=6 j=2 id=2 bytes=6144
recv    port=0 l=1 s=0 e=6 j=0 id=3 bytes=6144
tokrecv port=0 l=1 s=0 e=6 g=0 row=0 tokens=2 id=4 bytes=256
wait    id=3
wait    id=4
ffn     l=1 s=0 e=6 j=0 id=5 tokens=3
wait    id=5
reduce  port=0 l=1 s=0 e=6 g=4 row=0 tokens=2 id=6 bytes=512
tokrecv port=1 l=1 s=0 e=6 g=6 row=16 tokens=1 id=7 bytes=256
wait    id=7
acc     l=1 s=0 e=6 g=6 row=16 tokens=1 id=8
load    ch=0 l=1 s=0 e=7 j=0 id=9 bytes=6144 addr=0x6000 keep=1
free    l=1 s=0 e=1 j=0 id=10
sync    l=1 s=0
halt
"""

GOLDEN_TASKS_HEX = (
    "4653413303000200000102001100000000000300000000000000000000000000"
    "0100000001000000060002000000000001000000001800000030000000000000"
    "0c00000000000000000000000000000001000000000000000000000000000000"
    "0201000001000000060002000000000002000000001800000000000000000000"
    "0300000001000000060000000000000003000000001800000000000000000000"
    "0b00000001000000060000000000020004000000000100000000000000000000"
    "0c00000000000000000000000000000003000000000000000000000000000000"
    "0c00000000000000000000000000000004000000000000000000000000000000"
    "0400000001000000060000000000000005000000030000000000000000000000"
    "0c00000000000000000000000000000005000000000000000000000000000000"
    "0700000001000000060004000000020006000000000200000000000000000000"
    "0b01000001000000060006001000010007000000000100000000000000000000"
    "0c00000000000000000000000000000007000000000000000000000000000000"
    "0600000001000000060006001000010008000000000000000000000000000000"
    "0100010001000000070000000000000009000000001800000060000000000000"
    "050000000100000001000000000000000a000000000000000000000000000000"
    "0900000001000000000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)

GOLDEN_DYNAMIC_TEXT = """\
# fsedpc ISA v3
.chiplet 1
.mode dynamic
.channels 1
.ports 0 2            # neighbour chiplet of port 0, port 1
dense   l=0 tokens=0
sync    l=0
streams l=0
foreach n=11
when    home n=1
load    ch=* l=0 e=* j=* bytes=0 addr=*
when    inbound n=1
recv    port=* l=0 e=* j=* bytes=0
when    member n=1
ffn     l=0 e=* j=* tokens=0
when    forward n=2
where   next
send    port=* l=0 e=* j=* bytes=0
when    visit n=1
free    l=0 e=* j=*
sync    l=0
halt
"""

GOLDEN_DYNAMIC_HEX = (
    "4653413303000100010102001100000000000200000000000000000000000000"
    "080000000000ffff000000000000000000000000000000000000000000000000"
    "090000000000ffff000000000000000000000000000000000000000000000000"
    "100000000000ffff000000000000000000000000000000000000000000000000"
    "110000000000000000000000000000000b000000000000000000000000000000"
    "1200010000000000000000000000000001000000000000000000000000000000"
    "01ff00000000ffffffffffff000000000000000000000000ffffffffffffffff"
    "1200050000000000000000000000000001000000000000000000000000000000"
    "03ff00000000ffffffffffff0000000000000000000000000000000000000000"
    "1200020000000000000000000000000001000000000000000000000000000000"
    "040000000000ffffffffffff0000000000000000000000000000000000000000"
    "1200030000000000000000000000000002000000000000000000000000000000"
    "1300010000000000000000000000000000000000000000000000000000000000"
    "02ff00000000ffffffffffff0000000000000000000000000000000000000000"
    "1200060000000000000000000000000001000000000000000000000000000000"
    "050000000000ffffffffffff0000000000000000000000000000000000000000"
    "090000000000ffff000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)


@pytest.mark.parametrize(("program", "text", "hexdata"), [
    (GOLDEN_STATIC, GOLDEN_STATIC_TEXT, GOLDEN_STATIC_HEX),
    (GOLDEN_TASKS, GOLDEN_TASKS_TEXT, GOLDEN_TASKS_HEX),
    (GOLDEN_DYNAMIC, GOLDEN_DYNAMIC_TEXT, GOLDEN_DYNAMIC_HEX),
], ids=["stream", "tasks", "dynamic"])
def test_golden(program: Program, text: str, hexdata: str) -> None:
    assert to_text(program) == text
    assert encode(program).hex() == hexdata
    assert parse_text(text, "golden.fsa") == program
    assert decode(bytes.fromhex(hexdata), "golden.bin") == program
    assert sha256_hex(bytes.fromhex(hexdata)) == sha256_hex(encode(program))


def test_empty_program_and_no_ports() -> None:
    p = Program(7, "static", (), 0, np.zeros(0, INSTR_DTYPE))
    assert decode(encode(p)) == p
    assert len(encode(p)) == 32
    assert to_text(p) == "# fsedpc ISA v3\n.chiplet 7\n.mode static\n.channels 0\n.ports                # no ports\n"
    assert parse_text(to_text(p)) == p
    assert parse_text(".mode static\n.chiplet 7\n") == p


# --------------------------------------------------------------------------- the table and its reference


def test_opcode_table() -> None:
    expected = {
        "nop": (0x00, "control"), "load": (0x01, "dma"), "send": (0x02, "link_out"), "recv": (0x03, "link_in"),
        "ffn": (0x04, "compute"), "free": (0x05, "control"), "acc": (0x06, "compute"),
        "reduce": (0x07, "link_out"), "dense": (0x08, "compute"), "sync": (0x09, "control"),
        "toksend": (0x0A, "link_out"), "tokrecv": (0x0B, "link_in"), "wait": (0x0C, "control"),
        "streams": (0x10, "control"), "foreach": (0x11, "control"), "when": (0x12, "control"),
        "where": (0x13, "control"), "stream": (0x14, "control"), "mask": (0x15, "control"), "table": (0x16, "control"),
        "halt": (0x1F, "control"), "loads": (0x21, "dma"), "sends": (0x22, "link_out"),
        "recvs": (0x23, "link_in"), "ffns": (0x24, "compute"), "frees": (0x25, "control"),
    }  # fmt: skip
    assert {m: (v, OPS[v].engine) for m, v in OPCODE.items()} == expected
    assert INSTR_DTYPE.itemsize == 32
    for value, info in OPS.items():
        assert info.engine in ENGINES and isa.ENGINE_OF_OPCODE[value] == ENGINES.index(info.engine)
        assert "\n" not in info.semantics
        columns = [f.column for f in info.fields]
        assert len(columns) == len(set(columns)), info.mnemonic  # one field per column


def test_docs_isa_md_is_in_step_with_the_opcode_table() -> None:
    """docs/isa.md's opcode section is generated from `OPS`: regenerate it with
    `python -m fsedp_compiler.isa.reference` when the table changes."""
    doc = (REPO / "docs" / "isa.md").read_text()
    assert BEGIN in doc and END in doc
    generated = BEGIN + doc.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
    assert generated == render()
    for info in OPS.values():
        assert f"`{info.mnemonic}` (0x{info.value:02X})" in doc


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_program_rejects_invalid_records() -> None:
    with pytest.raises(ValueError, match="instruction 0: nop does not use column 'layer', which must be 0"):
        Program(0, "static", (), 0, [isa.instr("nop", layer=1)])
    with pytest.raises(ValueError, match="unknown opcode 0x7e"):
        Program(0, "static", (), 0, [isa.instr(0x7E)])
    with pytest.raises(ValueError, match="send references missing port 0; chiplet has 0 ports"):
        Program(0, "static", (), 0, [r("send", port=0)])
    with pytest.raises(ValueError, match="wait needs a task id >= 1"):
        Program(0, "static", (), 0, [r("wait")])
    with pytest.raises(ValueError, match="load keep must be 0 or 1, not 2"):
        Program(0, "static", (), 1, [isa.instr("load", x=2)])
    with pytest.raises(ValueError, match="mode must be"):
        Program(0, "fast", (), 0, [])


# --------------------------------------------------------------------------- decode errors


def _decode_error(data: bytes) -> str:
    with pytest.raises(FsedpError) as info:
        decode(data, "prog.bin")
    assert info.value.path == "prog.bin"
    return str(info.value)


START = isa.header_size(2)  # both goldens have 2 ports: records start at byte 32


def test_decode_truncated() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(data[:-1]) == (
        f"prog.bin: error: byte offset {len(data) - 1}: truncated records: the header says 14 instructions "
        "(448 bytes from byte 32), only 447 bytes follow (13 whole instructions)")
    assert _decode_error(data[:10]) == "prog.bin: error: byte offset 10: truncated header: 10 bytes, the header is 16 bytes"
    assert "truncated header: file is empty" in _decode_error(b"")
    assert _decode_error(data[:18]) == ("prog.bin: error: byte offset 18: truncated header: the port table of 2 ports "
                                        "ends at byte 32, file has 18 bytes")


def test_decode_header_errors() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(b"ELF\x7f" + data[4:]) == (
        "prog.bin: error: byte offset 0: bad magic b'ELF\\x7f': not an fsedpc ISA binary (expected b'FSA3')")
    assert "ISA binary of another version (b'FSA1')" in _decode_error(b"FSA1" + data[4:])
    raw = bytearray(data)
    struct.pack_into("<H", raw, 4, 4)
    assert _decode_error(bytes(raw)) == "prog.bin: error: byte offset 4: unsupported ISA version 4 (this fsedpc reads version 3)"
    raw = bytearray(data)
    raw[8] = 2
    assert _decode_error(bytes(raw)) == "prog.bin: error: byte offset 8: bad mode byte 2 (0 static, 1 dynamic)"
    raw = bytearray(data)
    raw[20] = 1
    assert _decode_error(bytes(raw)) == "prog.bin: error: byte offset 20: nonzero padding after the port table"
    assert _decode_error(data + b"\x00") == f"prog.bin: error: byte offset {len(data)}: 1 trailing byte after 14 instructions"


@pytest.mark.parametrize(("program", "record", "offset", "value", "message"), [
    ("static", 5, 0, 0x7E, "unknown opcode 0x7e"),
    ("static", 5, 1, 3, "sends references missing port 3; chiplet has 2 ports"),
    ("static", 4, 1, 2, "loads references missing DRAM channel 2; chiplet has 2 DRAM channels"),
    ("static", 12, 4, 1, "nop does not use column 'layer', which must be 0 (is 1)"),
    ("static", 2, 2, 4, "stream direction must be 0 (cw), 1 (ccw), 2 (short) or 3 (short-ccw), not 4"),
    ("dynamic", 4, 2, 9, "when has unknown condition 9 (1 home, 2 member, 3 forward, 4 last, 5 inbound, 6 visit)"),
    ("tasks", 1, 16, 0, "wait needs a task id >= 1"),
])
def test_decode_record_errors(program: str, record: int, offset: int, value: int, message: str) -> None:
    p = {"static": GOLDEN_STATIC, "dynamic": GOLDEN_DYNAMIC, "tasks": GOLDEN_TASKS}[program]
    raw = bytearray(encode(p))
    at = START + 32 * record
    raw[at + offset] = value
    assert _decode_error(bytes(raw)) == f"prog.bin: error: byte offset {at}: instruction {record}: {message}"


# --------------------------------------------------------------------------- text errors

HEAD = ".chiplet 0\n.mode static\n.channels 1\n.ports 1 2\n"  # instructions start on line 5


def _parse_error(text: str) -> FsedpError:
    with pytest.raises(FsedpError) as info:
        parse_text(text, "p.fsa")
    assert info.value.path == "p.fsa"
    return info.value


@pytest.mark.parametrize(("line", "where", "message"), [
    ("lod ch=0 l=0 s=0 e=5 j=2 bytes=6144 addr=0", "5:1", "unknown mnemonic 'lod'"),
    ("load ch=0 l=0 s=0 e=5 j=2 bytes=6144 addr=0 x=1", "5:45",
     "unknown field 'x' for load (expects ch= l= s= e= j= id= bytes= addr= keep=)"),
    ("  load   ch=0 l=0 s=0 e=5 j=2 addr=0  # no bytes", "5:3",
     "missing field 'bytes=' for load (expects ch= l= s= e= j= id= bytes= addr= keep=)"),
    ("free l=0 e=5 j=2", "5:1", "missing field 's=' for free (expects l= s= e= j= id=)"),
    ("ffn l=0 s=0 e=5 j=2 tokens=three", "5:21", "non-integer value 'three' for tokens"),
    ("ffn l=0 s=0 e=5 j=2.5 tokens=3", "5:17", "non-integer value '2.5' for j"),
    ("ffn l=0 s=0 e=70000 j=2 tokens=3", "5:13", "value 70000 out of range for e (0..65535 or *)"),
    ("dense l=0 s=0 tokens=4294967296", "5:15", "value 4294967296 out of range for tokens (0..4294967295)"),
    ("dense l=-1 s=0 tokens=4", "5:7", "value -1 out of range for l (must be >= 0)"),
    ("dense l=0 s=0 tokens=*", "5:15", "non-integer value '*' for tokens"),
    ("recv port=300 l=0 s=0 e=3 j=1 bytes=6144", "5:6", "value 300 out of range for port (0..255 or *)"),
    ("send port=2 l=0 s=0 e=5 j=2 bytes=6144", "5:6", "send references missing port 2; chiplet has 2 ports"),
    ("load ch=1 l=0 s=0 e=5 j=2 bytes=6144 addr=0", "5:6",
     "load references missing DRAM channel 1; chiplet has 1 DRAM channel"),
    ("stream dir=up l=0 s=0 e=5 members=1", "5:8", "dir must be cw, ccw, short or short-ccw, not 'up'"),
    ("load ch=0 l=0 s=0 e=5 j=2 bytes=1 addr=0 keep=2", "5:42", "value 2 out of range for keep (0..1)"),
    ("sync l=0 s=0 l=1", "5:14", "duplicate field 'l'"),
    ("when always n=1", "5:6", "unknown when cond 'always' (home | member | forward | last | inbound | visit)"),
    ("dense l=0 tokens=4", "5:1", "missing field 's=' for dense (expects l= s= tokens=)"),
    ("when n=1", "5:1", "missing cond for when (expects cond n=)"),
    ("halt now", "5:6", "expected key=value, got 'now' for halt (it takes no fields)"),
    ("mask word=1 bits=0", "5:1", "unknown mnemonic 'mask'"),
    ("wait id=0", "5:1", "wait needs a task id >= 1"),
    ("halt\n.mode dynamic", "6:1", "directive .mode after the first instruction"),
])
def test_text_errors(line: str, where: str, message: str) -> None:
    err = _parse_error(HEAD + line + "\n")
    assert f"{err.line}:{err.col}" == where
    assert err.message == message
    assert str(err).startswith(f"p.fsa:{where}: error: {message}")


@pytest.mark.parametrize(("text", "where", "message"), [
    (".mode static\nhalt\n", "2:1", "missing .chiplet directive before the first instruction"),
    (".chiplet 0\n\nhalt\n", "3:1", "missing .mode directive before the first instruction"),
    ("# empty\n.chiplet 3\n", "2:1", "missing .mode directive"),
    (".chiplet 0\n.mode fast\n", "2:7", ".mode must be static or dynamic, not 'fast'"),
    (".chiplet 0\n.chiplet 1\n", "2:1", "duplicate .chiplet directive"),
    (".chiplet 70000\n", "1:10", "value 70000 out of range for .chiplet (0..65535)"),
    (".chiplet 0\n.mode static\n.channels 256\n", "3:11", "value 256 out of range for .channels (0..255)"),
    (".chiplet 0 1\n", "1:12", ".chiplet takes one value"),
    (".ports 1 x\n", "1:10", "non-integer neighbour chiplet 'x' in .ports"),
    (".target x\n", "1:1", "unknown directive '.target' (.chiplet, .mode, .channels, .ports)"),
])
def test_directive_errors(text: str, where: str, message: str) -> None:
    err = _parse_error(text)
    assert f"{err.line}:{err.col}" == where
    assert err.message == message


def test_text_error_shows_the_line_and_a_caret() -> None:
    err = _parse_error(HEAD + "ffn l=0 s=0 e=5 j=2 tokens=x\n")
    assert str(err).splitlines()[1:] == ["ffn l=0 s=0 e=5 j=2 tokens=x", " " * 20 + "^"]


def test_l_and_s_may_be_omitted_only_in_dynamic_programs() -> None:
    dynamic = parse_text(".chiplet 0\n.mode dynamic\nffn e=1 j=2 tokens=3\n")
    row = dynamic.instrs[0]
    assert (int(row["layer"]), int(row["step"]), int(row["expert"])) == (C, C, 1)
    err = _parse_error(".chiplet 0\n.mode static\nffn e=1 j=2 tokens=3\n")
    assert (err.line, err.col) == (3, 1) and err.message.startswith("missing field 'l=' for ffn")


def test_hex_values_and_explicit_star_in_text() -> None:
    p = parse_text(".chiplet 0\n.mode static\n.ports 5\nsend port=0 l=* s=0x1 e=0xFFFF j=3 bytes=0x1800\n")
    assert p.instrs.tolist() == [isa.instr("send", layer=C, step=1, expert=C, shard=3, arg=6144)]
    assert "send    port=0 l=* s=1 e=* j=3 bytes=6144" in to_text(p)


def test_parse_text_lines_maps_records_to_source_lines() -> None:
    text = HEAD + "# a comment\n\nstream dir=cw l=0 s=0 e=1 members=0x" + "1" * 20 + "\nsync l=0 s=0\n"
    p, lines = isa.parse_text_lines(text)
    assert len(p) == 3 and lines == [7, 7, 8]
