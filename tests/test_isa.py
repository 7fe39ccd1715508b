"""The per-chiplet ISA (FSA v3): binary and text round trips, goldens (isa_goldens.py) and the opcode
table (decode and parse errors: test_isa_errors.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa_goldens import (GOLDEN_DYNAMIC, GOLDEN_DYNAMIC_HEX, GOLDEN_DYNAMIC_TEXT, GOLDEN_STATIC, GOLDEN_STATIC_HEX,
                         GOLDEN_STATIC_TEXT, GOLDEN_TASKS, GOLDEN_TASKS_HEX, GOLDEN_TASKS_TEXT)

from fsedp_compiler import isa
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.isa import (ANY_ADDR, ANY_UNIT, CCW, CONDITIONS, CURRENT, CW, ENGINES, INSTR_DTYPE, OPCODE, OPS,
                                WHERE_NEXT, Program, decode, encode, parse_text, sha256_hex, to_text)
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


# --------------------------------------------------------------------------- goldens (isa_goldens.py)


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
        "toksend": (0x0A, "link_out"), "tokrecv": (0x0B, "link_in"), "wait": (0x0C, "control"), "join": (0x0D, "control"),
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
