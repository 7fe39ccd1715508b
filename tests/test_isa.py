"""The per-chiplet ISA: binary and text round trips, goldens, and every decode / parse error."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.backends import isa
from fsedp_compiler.backends.isa import (
    ANY_UNIT,
    CCW,
    CONDITIONS,
    CURRENT,
    CW,
    ENGINES,
    INSTR_DTYPE,
    OPCODE,
    OPS,
    WHEN_FORWARD,
    WHEN_HOME,
    WHEN_INBOUND,
    WHEN_LAST,
    WHEN_MEMBER,
    WHEN_VISIT,
    WHERE_NEXT,
    Program,
    decode,
    encode,
    instr,
    sha256_hex,
)
from fsedp_compiler.backends.fsa import parse_text, to_text
from fsedp_compiler.errors import FsedpError

# --------------------------------------------------------------------------- random programs

_TAG = st.one_of(st.just(CURRENT), st.integers(0, 8), st.integers(0, 0xFFFF))
_U32 = st.one_of(st.integers(0, 10), st.just(0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))


@st.composite
def _record(draw: st.DrawFn, nports: int, channels: int) -> tuple[int, ...]:
    info = OPS[draw(st.sampled_from(sorted(OPS)))]
    rec = dict.fromkeys(isa.COLUMNS, 0)
    rec["opcode"] = info.value
    for field in info.fields:
        if field.kind == "tag":
            value = draw(_TAG)
        elif field.kind == "port":
            value = draw(st.sampled_from([*range(nports), ANY_UNIT]))
        elif field.kind == "channel":
            value = draw(st.sampled_from([*range(channels), ANY_UNIT]))
        elif field.kind == "u32":
            value = draw(_U32)
        elif field.kind == "dir":
            value = draw(st.sampled_from([CW, CCW]))
        elif field.kind == "cond":
            value = draw(st.sampled_from(sorted(CONDITIONS)))
        else:
            value = WHERE_NEXT
        rec[field.column] = value
    return tuple(rec[c] for c in isa.COLUMNS)


@st.composite
def programs(draw: st.DrawFn, max_instrs: int = 40) -> Program:
    nports = draw(st.integers(0, 9))
    ports = tuple(draw(st.lists(st.integers(0, 0xFFFF), min_size=nports, max_size=nports)))
    channels = draw(st.one_of(st.integers(0, 4), st.integers(0, 255)))
    rows = draw(st.lists(_record(nports, channels), max_size=max_instrs))
    return Program(
        chiplet=draw(st.integers(0, 0xFFFF)),
        mode=draw(st.sampled_from(isa.MODES)),
        ports=ports,
        channels=channels,
        instrs=np.array(rows, dtype=INSTR_DTYPE),
    )


@settings(max_examples=300, deadline=None)
@given(programs())
def test_binary_round_trip(p: Program) -> None:
    data = encode(p)
    assert decode(data) == p
    assert encode(decode(data)) == data
    header = isa.HEADER_SIZE + -(-2 * len(p.ports) // 16) * 16
    assert len(data) == header + 16 * len(p.instrs)
    assert header % 16 == 0


@settings(max_examples=300, deadline=None)
@given(programs())
def test_text_round_trip(p: Program) -> None:
    text = to_text(p)
    assert parse_text(text, "t.fsa") == p
    assert to_text(parse_text(text)) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_instrs=15), st.sampled_from([" ", "\t", "  \t "]), st.booleans())
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
    codes = np.array(sorted(OPS), dtype=np.uint8)
    a["opcode"] = rng.choice(codes, n)
    for column in ("layer", "step", "expert", "shard"):
        a[column] = rng.integers(0, 0x10000, n)
    a["arg"] = rng.integers(0, 2**32, n, dtype=np.uint64)
    a["unit"] = rng.choice(np.array([0, 1, ANY_UNIT], dtype=np.uint8), n)
    op = a["opcode"]
    a["flags"] = np.select(
        [op == isa.SEND, op == isa.WHEN, op == isa.WHERE],
        [rng.integers(0, 2, n), rng.integers(1, 5, n), np.ones(n, np.int64)],
        0,
    )
    for column in isa.COLUMNS[1:]:
        uses = np.array([v in OPS and column in OPS[v].columns for v in range(256)])
        a[column][~uses[op]] = 0
    p = Program(3, "dynamic", (2, 4), 2, a)
    data = encode(p)
    assert len(data) == 32 + 16 * n
    assert decode(data) == p


# --------------------------------------------------------------------------- goldens

C = CURRENT

GOLDEN_STATIC = Program(
    0,
    "static",
    (1, 3),
    2,
    [
        instr("dense", layer=0, step=0, arg=4),
        instr("recv", unit=1, layer=0, step=0, expert=3, shard=1, arg=6144),
        instr("load", unit=1, layer=0, step=0, expert=5, shard=2, arg=6144),
        instr("send", unit=0, flags=CW, expert=5, shard=2, arg=6144),
        instr("ffn", expert=5, shard=2, arg=3),
        instr("free", expert=5, shard=2),
        instr("ffn", expert=3, shard=1, arg=1),
        instr("send", unit=0, flags=CCW, expert=3, shard=1, arg=6144),
        instr("free", expert=3, shard=1),
        instr("toksend", unit=0, expert=7, shard=1, arg=8192),
        instr("tokrecv", unit=1, expert=7, shard=6, arg=8192),
        instr("acc", expert=7, shard=6, arg=2),
        instr("reduce", unit=1, expert=7, shard=5, arg=16384),
        instr("sync", layer=0, step=0),
        instr("nop"),
        instr("halt"),
    ],
)

GOLDEN_STATIC_TEXT = """\
# fsedpc ISA v1
.chiplet 0
.mode static
.channels 2
.ports 1 3            # neighbour chiplet of port 0, port 1
dense  l=0 s=0 tokens=4
recv   port=1 l=0 s=0 e=3 j=1 bytes=6144
load   ch=1 l=0 s=0 e=5 j=2 bytes=6144
send   port=0 dir=cw l=0 s=0 e=5 j=2 bytes=6144
ffn    l=0 s=0 e=5 j=2 tokens=3
free   l=0 s=0 e=5 j=2
ffn    l=0 s=0 e=3 j=1 tokens=1
send   port=0 dir=ccw l=0 s=0 e=3 j=1 bytes=6144
free   l=0 s=0 e=3 j=1
toksend port=0 l=0 s=0 e=7 g=1 bytes=8192
tokrecv port=1 l=0 s=0 e=7 g=6 bytes=8192
acc    l=0 s=0 e=7 g=6 tokens=2
reduce port=1 l=0 s=0 e=7 g=5 bytes=16384
sync   l=0 s=0
nop
halt
"""

GOLDEN_STATIC_HEX = (
    "46534131010000000002020010000000"  # FSA1 v1, chiplet 0, static, 2 channels, 2 ports, 16
    "01000300000000000000000000000000"  # ports (1, 3) + padding
    "08000000000000000000000004000000"
    "03010000000000000300010000180000"
    "01010000000000000500020000180000"
    "02000000000000000500020000180000"
    "04000000000000000500020003000000"
    "05000000000000000500020000000000"
    "04000000000000000300010001000000"
    "02000100000000000300010000180000"
    "05000000000000000300010000000000"
    "0a000000000000000700010000200000"
    "0b010000000000000700060000200000"
    "06000000000000000700060002000000"
    "07010000000000000700050000400000"
    "09000000000000000000000000000000"
    "00000000000000000000000000000000"
    "1f000000000000000000000000000000"
)

GOLDEN_DYNAMIC = Program(
    1,
    "dynamic",
    (0, 2),
    1,
    [
        instr("dense", layer=0, step=C, arg=4),
        instr("streams", layer=0, step=C),
        instr("foreach", arg=11),
        instr("when", flags=WHEN_HOME, arg=1),
        instr("load", unit=ANY_UNIT, layer=C, step=C, expert=C, shard=C),
        instr("when", flags=WHEN_INBOUND, arg=1),
        instr("recv", unit=ANY_UNIT, layer=C, step=C, expert=C, shard=C),
        instr("when", flags=WHEN_MEMBER, arg=1),
        instr("ffn", layer=C, step=C, expert=C, shard=C),
        instr("when", flags=WHEN_FORWARD, arg=2),
        instr("where", flags=WHERE_NEXT),
        instr("send", unit=ANY_UNIT, flags=CW, layer=C, step=C, expert=C, shard=C),
        instr("when", flags=WHEN_VISIT, arg=1),
        instr("free", layer=C, step=C, expert=C, shard=C),
        instr("when", flags=WHEN_LAST, arg=1),
        instr("acc", layer=C, step=C, expert=C, shard=C, arg=4),
        instr("sync", layer=0, step=C),
        instr("halt"),
    ],
)

GOLDEN_DYNAMIC_TEXT = """\
# fsedpc ISA v1
.chiplet 1
.mode dynamic
.channels 1
.ports 0 2            # neighbour chiplet of port 0, port 1
dense  l=0 tokens=4
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
when   last n=1
acc    e=* g=* tokens=4
sync   l=0
halt
"""

GOLDEN_DYNAMIC_HEX = (
    "46534131010001000101020012000000"  # FSA1 v1, chiplet 1, dynamic, 1 channel, 2 ports, 18
    "00000200000000000000000000000000"  # ports (0, 2) + padding
    "080000000000ffff0000000004000000"
    "100000000000ffff0000000000000000"
    "1100000000000000000000000b000000"
    "12000100000000000000000001000000"
    "01ff0000ffffffffffffffff00000000"
    "12000500000000000000000001000000"
    "03ff0000ffffffffffffffff00000000"
    "12000200000000000000000001000000"
    "04000000ffffffffffffffff00000000"
    "12000300000000000000000002000000"
    "13000100000000000000000000000000"
    "02ff0000ffffffffffffffff00000000"
    "12000600000000000000000001000000"
    "05000000ffffffffffffffff00000000"
    "12000400000000000000000001000000"
    "06000000ffffffffffffffff04000000"
    "090000000000ffff0000000000000000"
    "1f000000000000000000000000000000"
)


@pytest.mark.parametrize(
    ("program", "text", "hexdata"),
    [
        (GOLDEN_STATIC, GOLDEN_STATIC_TEXT, GOLDEN_STATIC_HEX),
        (GOLDEN_DYNAMIC, GOLDEN_DYNAMIC_TEXT, GOLDEN_DYNAMIC_HEX),
    ],
    ids=["static", "dynamic"],
)
def test_golden(program: Program, text: str, hexdata: str) -> None:
    assert to_text(program) == text
    assert encode(program).hex() == hexdata
    assert parse_text(text, "golden.fsa") == program
    assert decode(bytes.fromhex(hexdata), "golden.bin") == program
    assert sha256_hex(bytes.fromhex(hexdata)) == sha256_hex(encode(program))


def test_the_brief_example_parses_and_prints_back() -> None:
    text = """\
# fsedpc ISA v1
.chiplet 0
.mode dynamic
.channels 1
.ports 1 2            # neighbour chiplet of port 0, port 1
load   ch=0 l=0 s=0 e=5 j=2 bytes=6144
send   port=1 dir=cw l=0 s=0 e=5 j=2 bytes=6144
recv   port=0 l=0 s=0 e=3 j=1 bytes=6144
ffn    l=0 s=0 e=5 j=2 tokens=3
free   l=0 s=0 e=5 j=2
dense  l=0 tokens=4
sync   l=0 s=0
streams l=0
foreach n=5
when   member n=1
where  next
send   port=* dir=cw e=* j=* bytes=6144
halt
"""
    p = parse_text(text, "ex.fsa")
    assert to_text(p) == text
    last_send = p.instrs[-2]
    assert last_send["unit"] == ANY_UNIT
    assert [int(last_send[c]) for c in ("layer", "step", "expert", "shard")] == [C] * 4
    assert int(p.instrs[7]["step"]) == C  # streams l=0: step is CURRENT


def test_empty_program_and_no_ports() -> None:
    p = Program(7, "static", (), 0, np.zeros(0, INSTR_DTYPE))
    assert decode(encode(p)) == p
    assert len(encode(p)) == 16
    assert to_text(p) == (
        "# fsedpc ISA v1\n.chiplet 7\n.mode static\n.channels 0\n"
        ".ports                # no ports\n"
    )
    assert parse_text(to_text(p)) == p
    assert parse_text(".mode static\n.chiplet 7\n") == p


# --------------------------------------------------------------------------- the table


def test_opcode_table() -> None:
    expected = {
        "nop": (0x00, "control"),
        "load": (0x01, "dma"),
        "send": (0x02, "link_out"),
        "recv": (0x03, "link_in"),
        "ffn": (0x04, "compute"),
        "free": (0x05, "control"),
        "acc": (0x06, "compute"),
        "reduce": (0x07, "link_out"),
        "dense": (0x08, "compute"),
        "sync": (0x09, "control"),
        "toksend": (0x0A, "link_out"),
        "tokrecv": (0x0B, "link_in"),
        "streams": (0x10, "control"),
        "foreach": (0x11, "control"),
        "stream": (0x14, "control"),
        "loads": (0x21, "dma"),
        "sends": (0x22, "link_out"),
        "recvs": (0x23, "link_in"),
        "ffns": (0x24, "compute"),
        "frees": (0x25, "control"),
        "when": (0x12, "control"),
        "where": (0x13, "control"),
        "halt": (0x1F, "control"),
    }
    assert {m: (v, OPS[v].engine) for m, v in OPCODE.items()} == expected
    assert INSTR_DTYPE.itemsize == 16
    for value, info in OPS.items():
        assert info.engine in ENGINES
        assert isa.ENGINE_OF_OPCODE[value] == ENGINES.index(info.engine)
        assert f"``{info.mnemonic}`` 0x{value:02X}" in isa.__doc__
        assert info.semantics in isa.__doc__
        assert "\n" not in info.semantics


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_program_rejects_invalid_records() -> None:
    with pytest.raises(ValueError, match="instruction 0: nop does not use field 'layer'"):
        Program(0, "static", (), 0, [instr("nop", layer=1)])
    with pytest.raises(ValueError, match="unknown opcode 0x7e"):
        Program(0, "static", (), 0, [(0x7E, 0, 0, 0, 0, 0, 0, 0)])
    with pytest.raises(ValueError, match="send references missing port 0; chiplet has 0 ports"):
        Program(0, "static", (), 0, [instr("send", unit=0)])
    with pytest.raises(ValueError, match="mode must be"):
        Program(0, "fast", (), 0, [])


# --------------------------------------------------------------------------- decode errors


def _records_start(p: Program) -> int:
    return isa.HEADER_SIZE + -(-2 * len(p.ports) // 16) * 16


def _decode_error(data: bytes) -> str:
    with pytest.raises(FsedpError) as info:
        decode(data, "prog.bin")
    assert info.value.path == "prog.bin"
    return str(info.value)


def test_decode_truncated_by_one_byte() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(data[:-1]) == (
        f"prog.bin: error: byte offset {len(data) - 1}: truncated records: the header says 16 "
        "instructions (256 bytes from byte 32), only 255 bytes follow (15 whole instructions)"
    )


def test_decode_truncated_by_one_record() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(data[:-16]) == (
        f"prog.bin: error: byte offset {len(data) - 16}: truncated records: the header says 16 "
        "instructions (256 bytes from byte 32), only 240 bytes follow (15 whole instructions)"
    )


def test_decode_truncated_header() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(data[:10]) == (
        "prog.bin: error: byte offset 10: truncated header: 10 bytes, the header is 16 bytes"
    )
    assert "truncated header: file is empty" in _decode_error(b"")
    assert _decode_error(data[:20]) == (
        "prog.bin: error: byte offset 20: truncated header: the port table of 2 ports ends "
        "at byte 32, file has 20 bytes"
    )


def test_decode_bad_magic() -> None:
    data = b"ELF\x7f" + encode(GOLDEN_STATIC)[4:]
    assert _decode_error(data) == (
        "prog.bin: error: byte offset 0: bad magic b'ELF\\x7f': not an fsedpc ISA binary "
        "(expected b'FSA1')"
    )


def test_decode_unsupported_version() -> None:
    data = bytearray(encode(GOLDEN_STATIC))
    struct.pack_into("<H", data, 4, 2)
    assert _decode_error(bytes(data)) == (
        "prog.bin: error: byte offset 4: unsupported ISA version 2 (this fsedpc reads version 1)"
    )


def test_decode_unknown_opcode() -> None:
    data = bytearray(encode(GOLDEN_STATIC))
    offset = _records_start(GOLDEN_STATIC) + 16 * 5
    data[offset] = 0x7E
    assert _decode_error(bytes(data)) == (
        f"prog.bin: error: byte offset {offset}: instruction 5: unknown opcode 0x7e"
    )


def test_decode_missing_port() -> None:
    data = bytearray(encode(GOLDEN_STATIC))
    offset = _records_start(GOLDEN_STATIC) + 16 * 3  # send port=0
    data[offset + 1] = 3
    assert _decode_error(bytes(data)) == (
        f"prog.bin: error: byte offset {offset}: instruction 3: "
        "send references missing port 3; chiplet has 2 ports"
    )


def test_decode_missing_channel() -> None:
    data = bytearray(encode(GOLDEN_STATIC))
    offset = _records_start(GOLDEN_STATIC) + 16 * 2  # load ch=1 of 2 channels
    data[offset + 1] = 2
    assert _decode_error(bytes(data)) == (
        f"prog.bin: error: byte offset {offset}: instruction 2: "
        "load references missing DRAM channel 2; chiplet has 2 DRAM channels"
    )


def test_decode_trailing_byte() -> None:
    data = encode(GOLDEN_STATIC)
    assert _decode_error(data + b"\x00") == (
        f"prog.bin: error: byte offset {len(data)}: 1 trailing byte after 16 instructions"
    )


def test_decode_noncanonical_records() -> None:
    start = _records_start(GOLDEN_STATIC)
    data = bytearray(encode(GOLDEN_STATIC))
    data[start + 16 * 14 + 4] = 1  # nop with layer 1
    assert _decode_error(bytes(data)).endswith(
        "instruction 14: nop does not use field 'layer', which must be 0 (is 1)"
    )
    data = bytearray(encode(GOLDEN_DYNAMIC))
    data[_records_start(GOLDEN_DYNAMIC) + 16 * 3 + 2] = 9  # when with condition 9
    assert _decode_error(bytes(data)).endswith(
        "instruction 3: when has unknown condition 9 "
        "(flags: 1 home, 2 member, 3 forward, 4 last, 5 inbound, 6 visit)"
    )
    data = bytearray(encode(GOLDEN_STATIC))
    data[8] = 2
    assert _decode_error(bytes(data)) == (
        "prog.bin: error: byte offset 8: bad mode byte 2 (0 static, 1 dynamic)"
    )
    data = bytearray(encode(GOLDEN_STATIC))
    data[20] = 1
    assert _decode_error(bytes(data)) == (
        "prog.bin: error: byte offset 20: nonzero padding after the port table"
    )


# --------------------------------------------------------------------------- text errors

HEAD = ".chiplet 0\n.mode static\n.channels 1\n.ports 1 2\n"  # instructions start on line 5


def _parse_error(text: str) -> FsedpError:
    with pytest.raises(FsedpError) as info:
        parse_text(text, "p.fsa")
    assert info.value.path == "p.fsa"
    return info.value


@pytest.mark.parametrize(
    ("line", "where", "message"),
    [
        ("lod ch=0 l=0 s=0 e=5 j=2 bytes=6144", "5:1", "unknown mnemonic 'lod'"),
        (
            "load ch=0 l=0 s=0 e=5 j=2 bytes=6144 x=1",
            "5:38",
            "unknown field 'x' for load (expects ch= l= s= e= j= bytes=)",
        ),
        (
            "  load   ch=0 l=0 s=0 e=5 j=2   # no bytes",
            "5:3",
            "missing field 'bytes=' for load (expects ch= l= s= e= j= bytes=)",
        ),
        ("free l=0 e=5 j=2", "5:1", "missing field 's=' for free (expects l= s= e= j=)"),
        ("ffn l=0 s=0 e=5 j=2 tokens=three", "5:21", "non-integer value 'three' for tokens"),
        ("ffn l=0 s=0 e=5 j=2.5 tokens=3", "5:17", "non-integer value '2.5' for j"),
        (
            "ffn l=0 s=0 e=70000 j=2 tokens=3",
            "5:13",
            "value 70000 out of range for e (0..65535 or *)",
        ),
        (
            "dense l=0 tokens=4294967296",
            "5:11",
            "value 4294967296 out of range for tokens (0..4294967295)",
        ),
        ("dense l=-1 tokens=4", "5:7", "value -1 out of range for l (0..65535 or *)"),
        ("dense l=0 tokens=*", "5:11", "non-integer value '*' for tokens"),
        (
            "recv port=300 l=0 s=0 e=3 j=1 bytes=6144",
            "5:6",
            "value 300 out of range for port (0..255 or *)",
        ),
        (
            "send port=2 dir=cw l=0 s=0 e=5 j=2 bytes=6144",
            "5:6",
            "send references missing port 2; chiplet has 2 ports",
        ),
        (
            "load ch=1 l=0 s=0 e=5 j=2 bytes=6144",
            "5:6",
            "load references missing DRAM channel 1; chiplet has 1 DRAM channel",
        ),
        ("send port=0 dir=up l=0 s=0 e=5 j=2 bytes=1", "5:13", "dir must be cw or ccw, not 'up'"),
        ("sync l=0 s=0 l=1", "5:14", "duplicate field 'l'"),
        (
            "when always n=1",
            "5:6",
            "unknown when cond 'always' (home | member | forward | last | inbound | visit)",
        ),
        ("dense l=0 tokens=4", "5:1", "missing field 's=' for dense (expects l= s= tokens=)"),
        ("when n=1", "5:1", "missing cond for when (expects cond n=)"),
        ("halt now", "5:6", "expected key=value, got 'now' for halt (it takes no fields)"),
        ("halt\n.mode dynamic", "6:1", "directive .mode after the first instruction"),
    ],
)
def test_text_errors(line: str, where: str, message: str) -> None:
    err = _parse_error(HEAD + line + "\n")
    assert f"{err.line}:{err.col}" == where
    assert err.message == message
    assert str(err).startswith(f"p.fsa:{where}: error: {message}")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (".mode static\nhalt\n", "2:1", "missing .chiplet directive before the first instruction"),
        (".chiplet 0\n\nhalt\n", "3:1", "missing .mode directive before the first instruction"),
        ("# empty\n.chiplet 3\n", "2:1", "missing .mode directive"),
        (".chiplet 0\n.mode fast\n", "2:7", ".mode must be static or dynamic, not 'fast'"),
        (".chiplet 0\n.chiplet 1\n", "2:1", "duplicate .chiplet directive"),
        (".chiplet 70000\n", "1:10", "value 70000 out of range for .chiplet (0..65535)"),
        (
            ".chiplet 0\n.mode static\n.channels 256\n",
            "3:11",
            "value 256 out of range for .channels (0..255)",
        ),
        (".chiplet 0 1\n", "1:12", ".chiplet takes one value"),
        (".ports 1 x\n", "1:10", "non-integer neighbour chiplet 'x' in .ports"),
        (".target x\n", "1:1", "unknown directive '.target' (.chiplet, .mode, .channels, .ports)"),
    ],
)
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
    assert (err.line, err.col) == (3, 1)
    assert err.message.startswith("missing field 'l=' for ffn")


def test_hex_values_and_explicit_star_in_text() -> None:
    p = parse_text(
        ".chiplet 0\n.mode static\n.ports 5\n"
        "send port=0 dir=ccw l=* s=0x1 e=0xFFFF j=3 bytes=0x1800"
    )
    assert p.instrs.tolist() == [(isa.SEND, 0, CCW, C, 1, C, 3, 6144)]
    assert "send   port=0 dir=ccw l=* s=1 e=* j=3 bytes=6144" in to_text(p)


def test_emitter_style_dynamic_records_keep_their_layer() -> None:
    """Leaf records with a concrete layer and CURRENT step/expert/shard print `l=` only."""
    p = Program(
        0,
        "dynamic",
        (1,),
        0,
        [instr("ffn", layer=2, step=C, expert=C, shard=C), instr("dense", layer=2, step=5)],
    )
    assert to_text(p).splitlines()[-2:] == [
        "ffn    l=2 e=* j=* tokens=0",
        "dense  l=2 s=5 tokens=0",
    ]
    assert parse_text(to_text(p)) == p
