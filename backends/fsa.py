"""The `.fsa` text form of the instruction set (`backends/isa.py`): one instruction a line.

`to_text(p)` prints a program for people and golden tests; `parse_text(text, path)` reads it
back with errors at path:line:col; `parse_text(to_text(p)) == p`. The fields each opcode prints,
and their order, come from `isa.OPS`, so the text form cannot drift from the binary one.
"""

from __future__ import annotations

import re

import numpy as np

from fsedp_compiler.errors import FsedpError, source_context

from .isa import (
    ANY_UNIT,
    CCW,
    COLUMNS,
    CONDITIONS,
    CURRENT,
    CW,
    INSTR_DTYPE,
    MODES,
    OPS,
    POLICIES,
    VERSION,
    Field,
    OpInfo,
    Program,
    _channel_message,
    _port_message,
)


_MNEMONIC_WIDTH = 6
_OMITTABLE = frozenset({"l", "s"})  # may be omitted (meaning *) in dynamic programs


def _ports_comment(nports: int) -> str:
    if nports == 0:
        return "# no ports"
    if nports <= 4:
        return "# neighbour chiplet of " + ", ".join(f"port {i}" for i in range(nports))
    return "# neighbour chiplet of each port, in port order"


def _format_column(field: Field, values: np.ndarray, dynamic: bool) -> list[str]:
    """The text of one field for a group of records, each with a leading space ('' if omitted)."""
    vals = values.tolist()
    key = field.key
    kind = field.kind
    if kind in ("tag", "port", "channel"):
        star = CURRENT if kind == "tag" else ANY_UNIT
        starred = f" {key}=*"
        if dynamic and key in _OMITTABLE:
            starred = ""
        return [starred if v == star else f" {key}={v}" for v in vals]
    if kind == "u32":
        return [f" {key}={v}" for v in vals]
    if kind == "dir":
        names = (" dir=cw", " dir=ccw")
        return [names[v] for v in vals]
    table = CONDITIONS if kind == "cond" else POLICIES
    return [f" {table[v]}" for v in vals]


def _format_group(info: OpInfo, recs: np.ndarray, dynamic: bool) -> list[str]:
    head = info.mnemonic
    if not info.fields:
        return [head] * len(recs)
    head = f"{head:<{_MNEMONIC_WIDTH}}"
    cols = [_format_column(f, recs[f.column], dynamic) for f in info.fields]
    lines = [head + "".join(parts) for parts in zip(*cols)]
    if dynamic and all(f.key in _OMITTABLE for f in info.fields):
        lines = [line.rstrip() for line in lines]
    return lines


def format_record(record: tuple[int, ...], dynamic: bool = False) -> str:
    """One record (opcode, unit, flags, layer, step, expert, shard, arg) as its text line."""
    arr = np.zeros(1, dtype=INSTR_DTYPE)
    arr[0] = record
    return _format_group(OPS[int(record[0])], arr, dynamic)[0]


def to_text(p: Program) -> str:
    """The `.fsa` text of `p`; `parse_text(to_text(p)) == p`."""
    ports = " ".join(str(n) for n in p.ports)
    ports_line = f".ports {ports}" if ports else ".ports"
    head = [
        f"# fsedpc ISA v{VERSION}",
        f".chiplet {p.chiplet}",
        f".mode {p.mode}",
        f".channels {p.channels}",
        f"{ports_line:<21} {_ports_comment(len(p.ports))}",
    ]
    instrs = p.instrs
    op = instrs["opcode"]
    dynamic = p.mode == "dynamic"
    lines = np.empty(len(instrs), dtype=object)
    present = np.flatnonzero(np.bincount(op, minlength=256)).tolist()
    for value in present:
        where = np.flatnonzero(op == value) if len(present) > 1 else slice(None)
        lines[where] = _format_group(OPS[value], instrs[where], dynamic)
    return "\n".join(head + lines.tolist()) + "\n"


_TOKEN = re.compile(r"\S+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+\Z")
_NEG = re.compile(r"-[0-9]+\Z")


class _Syntax:
    """Per-opcode parsing tables derived from OPS."""

    def __init__(self, info: OpInfo) -> None:
        self.info = info
        self.keyed = {f.key: f for f in info.fields if f.kind not in ("cond", "policy")}
        positional = [f for f in info.fields if f.kind in ("cond", "policy")]
        self.positional = positional[0] if positional else None
        self.words: dict[str, int] = {}
        if self.positional is not None:
            table = CONDITIONS if self.positional.kind == "cond" else POLICIES
            self.words = {name: value for value, name in table.items()}
        self.index = {f.key: COLUMNS.index(f.column) for f in info.fields}
        self.bit = {f.key: 1 << k for k, f in enumerate(info.fields)}
        self.all_bits = (1 << len(info.fields)) - 1


_SYNTAX = {info.mnemonic: _Syntax(info) for info in OPS.values()}
_FIELD_MAX = {"tag": 0xFFFF, "port": 0xFF, "channel": 0xFF, "u32": 0xFFFFFFFF}


class _TextError(Exception):
    def __init__(self, token: int, message: str) -> None:
        super().__init__(message)
        self.token = token  # index of the offending token on the line
        self.message = message


def _int_value(val: str) -> int | None:
    if val.isascii() and val.isdigit():
        return int(val)
    if _HEX.match(val):
        return int(val, 16)
    return None


def _field_value(field: Field, val: str, tok: int) -> int:
    kind = field.kind
    if kind == "dir":
        if val == "cw":
            return CW
        if val == "ccw":
            return CCW
        raise _TextError(tok, f"dir must be cw or ccw, not {val!r}")
    if val == "*" and kind != "u32":
        return CURRENT if kind == "tag" else ANY_UNIT
    number = _int_value(val)
    hi = _FIELD_MAX[kind]
    star = "" if kind == "u32" else " or *"
    if number is None:
        if _NEG.match(val):
            raise _TextError(tok, f"value {val} out of range for {field.key} (0..{hi}{star})")
        raise _TextError(tok, f"non-integer value {val!r} for {field.key}")
    if number > hi:
        raise _TextError(tok, f"value {val} out of range for {field.key} (0..{hi}{star})")
    return number


def _field_token(
    syntax: _Syntax, tok: str, t: int, nports: int, channels: int
) -> tuple[int, int, int, str]:
    """One field token of an instruction: (record column index, value, field bit, key)."""
    info = syntax.info
    key, eq, val = tok.partition("=")
    if eq:
        field = syntax.keyed.get(key)
        if field is None:
            raise _TextError(t, f"unknown field {key!r} for {info.mnemonic}{_expected(info)}")
        value = _field_value(field, val, t)
        if field.kind == "port" and value != ANY_UNIT and value >= nports:
            raise _TextError(t, _port_message(info.mnemonic, value, nports))
        if field.kind == "channel" and value != ANY_UNIT and value >= channels:
            raise _TextError(t, _channel_message(value, channels))
    else:
        field = syntax.positional
        if field is None:
            raise _TextError(
                t, f"expected key=value, got {tok!r} for {info.mnemonic}{_expected(info)}"
            )
        found = syntax.words.get(tok)
        if found is None:
            words = " | ".join(syntax.words)
            raise _TextError(t, f"unknown {info.mnemonic} {field.key} {tok!r} ({words})")
        value = found
        key = field.key
    return syntax.index[key], value, syntax.bit[key], key


class _InstructionParser:
    """Parses instruction lines of one program; caches every distinct (mnemonic, token)."""

    def __init__(self, dynamic: bool, nports: int, channels: int) -> None:
        self.dynamic = dynamic
        self.nports = nports
        self.channels = channels
        self.caches: dict[str, dict[str, tuple[int, int, int, str]]] = {m: {} for m in _SYNTAX}

    def parse(self, toks: list[str]) -> tuple[int, ...]:
        mnemonic = toks[0]
        syntax = _SYNTAX.get(mnemonic)
        if syntax is None:
            raise _TextError(0, f"unknown mnemonic {mnemonic!r}")
        cache = self.caches[mnemonic]
        rec = [syntax.info.value, 0, 0, 0, 0, 0, 0, 0]
        seen = 0
        for t in range(1, len(toks)):
            tok = toks[t]
            hit = cache.get(tok)
            if hit is None:
                hit = cache[tok] = _field_token(syntax, tok, t, self.nports, self.channels)
            index, value, bit, key = hit
            if seen & bit:
                raise _TextError(t, f"duplicate field {key!r}")
            seen |= bit
            rec[index] = value
        if seen != syntax.all_bits:
            for field in syntax.info.fields:
                if seen & syntax.bit[field.key]:
                    continue
                if self.dynamic and field.key in _OMITTABLE:
                    rec[syntax.index[field.key]] = CURRENT
                    continue
                what = f"field '{field.key}='" if field.key in syntax.keyed else field.key
                raise _TextError(0, f"missing {what} for {mnemonic}{_expected(syntax.info)}")
        return tuple(rec)


def _expected(info: OpInfo) -> str:
    if not info.fields:
        return " (it takes no fields)"
    parts = [f.key if f.kind in ("cond", "policy") else f"{f.key}=" for f in info.fields]
    return f" (expects {' '.join(parts)})"


def _directive(toks: list[str], state: dict[str, object]) -> None:
    """Apply one directive line (`.chiplet`, `.mode`, `.channels`, `.ports`) to `state`."""
    name = toks[0]
    args = toks[1:]
    if name not in (".chiplet", ".mode", ".channels", ".ports"):
        raise _TextError(0, f"unknown directive {name!r} (.chiplet, .mode, .channels, .ports)")
    if name in state:
        raise _TextError(0, f"duplicate {name} directive")
    if name == ".ports":
        values = []
        for t, val in enumerate(args, 1):
            number = _int_value(val)
            if number is None:
                raise _TextError(t, f"non-integer neighbour chiplet {val!r} in .ports")
            if number > 0xFFFF:
                raise _TextError(t, f"neighbour chiplet {val} out of range 0..65535")
            values.append(number)
        if len(values) > 0xFFFF:
            raise _TextError(0, "more than 65535 ports")
        state[name] = tuple(values)
        return
    if len(args) != 1:
        raise _TextError(min(len(toks) - 1, 2) if args else 0, f"{name} takes one value")
    val = args[0]
    if name == ".mode":
        if val not in MODES:
            raise _TextError(1, f".mode must be static or dynamic, not {val!r}")
        state[name] = val
        return
    number = _int_value(val)
    if number is None:
        raise _TextError(1, f"non-integer value {val!r} for {name}")
    hi = 0xFFFF if name == ".chiplet" else 0xFF
    if number > hi:
        raise _TextError(1, f"value {val} out of range for {name} (0..{hi})")
    state[name] = number


def parse_text(text: str, path: str = "<text>") -> Program:
    """Parse `.fsa` text; errors are `FsedpError`s naming path:line:col of the bad token."""
    state: dict[str, object] = {}
    rows: list[tuple[int, ...]] = []
    started = False
    parser: _InstructionParser | None = None
    lineno = 0
    lines = text.split("\n")
    try:
        for lineno, raw in enumerate(lines, 1):  # noqa: B007 (the handler reads lineno)
            hash_at = raw.find("#")
            code = raw if hash_at < 0 else raw[:hash_at]
            toks = code.split()
            if not toks:
                continue
            if toks[0][0] == ".":
                if started:
                    raise _TextError(0, f"directive {toks[0]} after the first instruction")
                _directive(toks, state)
                continue
            if not started:
                for name in (".chiplet", ".mode"):
                    if name not in state:
                        raise _TextError(
                            0, f"missing {name} directive before the first instruction"
                        )
                started = True
                parser = _InstructionParser(
                    state[".mode"] == "dynamic",
                    len(state.get(".ports", ())),  # type: ignore[arg-type]
                    state.get(".channels", 0),  # type: ignore[arg-type]
                )
            rows.append(parser.parse(toks))  # type: ignore[union-attr]
    except _TextError as err:
        raw = lines[lineno - 1]
        hash_at = raw.find("#")
        code = raw if hash_at < 0 else raw[:hash_at]
        col = list(_TOKEN.finditer(code))[err.token].start() + 1
        raise FsedpError(
            err.message, path=path, line=lineno, col=col, context=source_context(text, lineno, col)
        ) from None
    for name in (".chiplet", ".mode"):
        if name not in state:
            last = max(1, len(lines) - (1 if lines and lines[-1] == "" else 0))
            raise FsedpError(f"missing {name} directive", path=path, line=last, col=1)
    instrs = np.array(rows, dtype=INSTR_DTYPE) if rows else np.zeros(0, INSTR_DTYPE)
    return Program(
        state[".chiplet"],  # type: ignore[arg-type]
        state[".mode"],  # type: ignore[arg-type]
        state.get(".ports", ()),  # type: ignore[arg-type]
        state.get(".channels", 0),  # type: ignore[arg-type]
        instrs,
    )
