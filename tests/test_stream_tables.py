"""The shared stream-table file of static programs (`streams.bin`): round trip, golden text, every
decode error located, and the text forms written on request (`fsedpc compile --text`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.isa import MASK, STREAM, StreamTables, decode_tables, encode_tables, record
from fsedp_compiler.isa.opcodes import INSTR_DTYPE

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
GOLDEN = REPO / "tests" / "golden" / "compile-tiny-moe"


def _recs(*rows: tuple[int, ...]) -> np.ndarray:
    return np.array(list(rows), dtype=INSTR_DTYPE)


def _tables() -> list[tuple[int, int, np.ndarray]]:
    head = list(record("stream", dir=0, l=1, s=0, e=3, members=0x5))
    head[9] = 1  # the n column: one MASK record follows
    wide = _recs(tuple(head), record("mask", word=1, bits=0x3))
    return [(1, 0, wide), (1, 1, _recs(record("stream", dir=2, ring=1, l=1, s=1, e=0, members=0x1),
                                       record("stream", dir=1, l=1, s=1, e=2, members=0xF)))]


def test_round_trip() -> None:
    tables = decode_tables(encode_tables(_tables()))
    assert isinstance(tables, StreamTables)
    assert tables.index == {(1, 0): (0, 2), (1, 1): (2, 4)}
    assert tables.streams(1, 1) == 2 and tables.streams(1, 0) == 1 and tables.streams(3, 3) == 0
    assert tables.records(1, 0)[1]["opcode"].tolist() == [STREAM, MASK]
    assert len(encode_tables([])) == 32 and decode_tables(encode_tables([])).index == {}


def _error(data: bytes) -> str:
    with pytest.raises(FsedpError) as err:
        decode_tables(data, "streams.bin")
    return str(err.value)


def test_every_decode_error_is_located() -> None:
    good = encode_tables(_tables())
    raw = bytearray(good)
    assert "byte offset 0: bad magic" in _error(b"FSA3" + good[4:])
    struct.pack_into("<H", raw, 4, 2)
    assert "byte offset 4: unsupported stream-table version 2" in _error(bytes(raw))
    assert "truncated header" in _error(good[:10])
    assert "the header says 4 records" in _error(good[:-1])
    assert "the header says 4 records" in _error(good + bytes(32))
    raw = bytearray(good)
    raw[6] = 1
    assert "byte offset 6: reserved field must be 0" in _error(bytes(raw))
    raw = bytearray(encode_tables(_tables()[:1]))  # one table: its index ends at byte 24
    raw[31] = 1
    assert "byte offset 24: nonzero padding" in _error(bytes(raw))
    raw = bytearray(good)
    struct.pack_into("<I", raw, 12, 3)  # fewer records than the tables add up to
    assert "byte offset" in _error(bytes(raw))
    dense = _recs(record("dense", l=1, s=0, tokens=1))
    assert "record 0: a stream table holds stream and mask records only" in _error(encode_tables([(1, 0, dense)]))
    assert "table 1: a second table for l=1 s=0" in _error(encode_tables([_tables()[0], _tables()[0]]))
    assert "is empty" in _error(encode_tables([(1, 0, _recs())]))
    wide, rows = _tables()[0][2], _tables()[1][2]  # a stream's mask record in the next table
    assert "record 1: table 1 must start with a stream record" in _error(
        encode_tables([(1, 0, wide[:1]), (1, 1, np.concatenate([wide[1:], rows]))]))
    assert "stream announces 1 mask records" in _error(encode_tables([(1, 0, _tables()[0][2][:1])]))
    assert "record 0: stream row tagged l=1 s=0 in the table of l=1 s=1" in _error(
        encode_tables([(1, 1, _tables()[0][2])]))
    bad_dir = _recs(record("stream", dir=7, l=0, s=0, e=0, members=1))
    assert "stream direction must be" in _error(encode_tables([(0, 0, bad_dir)]))


def test_golden_stream_tables(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(tmp_path / "p"))
    assert r.code == 0, r.err
    r = fsedpc("disasm", str(tmp_path / "p" / "streams.bin"))
    assert r.code == 0 and r.out == (GOLDEN / "streams.txt").read_text()
    manifest = json.loads((tmp_path / "p" / "program.json").read_text())
    assert "streams.bin" in manifest["files"]


def test_text_forms_on_request(fsedpc, tmp_path: Path, monkeypatch) -> None:
    """--text never writes the .bin alone (same program, same machine results); errors then name
    the .bin and its record; asm refuses; auto skips the text of programs above the limit."""
    runs = {}
    for choice in ("always", "never"):
        out = tmp_path / choice
        r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(out),
                   "--text", choice)
        assert r.code == 0, r.err
        r = fsedpc("simulate", str(out), "--functional", "--metrics", str(tmp_path / f"{choice}.json"))
        assert r.code == 0, r.err
        runs[choice] = json.loads((tmp_path / f"{choice}.json").read_text())
        assert (out / "chiplet_0.fsa").exists() == (choice == "always")
        assert (out / "final.mlir").exists() == (choice == "always")
    assert runs["always"] == runs["never"]
    for i in range(4):
        assert (tmp_path / "always" / f"chiplet_{i}.bin").read_bytes() == (tmp_path / "never" / f"chiplet_{i}.bin").read_bytes()
    manifest = json.loads((tmp_path / "never" / "program.json").read_text())
    assert all("fsa" not in p and "fsa_sha256" not in p for p in manifest["programs"])
    r = fsedpc("asm", str(tmp_path / "never"))
    assert r.code == 2 and "compiled without its text form" in r.err
    import fsedp_compiler.backends.emit as emit_mod

    monkeypatch.setattr(emit_mod, "TEXT_LIMIT", 10)
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(tmp_path / "auto"))
    assert r.code == 0 and "without their text forms" in r.err
    assert not (tmp_path / "auto" / "chiplet_0.fsa").exists()
