"""The per-chiplet ISA's errors: every decode error of a corrupted binary (with its byte offset)
and every parse error of the text form (with its line, column and a caret)."""

from __future__ import annotations

import struct

import pytest
from isa_goldens import GOLDEN_DYNAMIC, GOLDEN_STATIC, GOLDEN_TASKS, C

from fsedp_compiler import isa
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.isa import decode, encode, parse_text, to_text

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
