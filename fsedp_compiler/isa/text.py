"""The `.fsa` text form: one instruction a line, `key=value` fields, `#` comments.

`to_text(p)` prints a program; `parse_text(text, path)` reads it back with errors at
path:line:col; `parse_text(to_text(p)) == p`. Which fields an opcode prints, and in which order,
comes from `opcodes.OPS`. A STREAM's member set prints as one hex number however wide; in the
binary it is the STREAM record plus MASK continuation records (64 chiplets each).
"""

from __future__ import annotations

import re

import numpy as np

from fsedp_compiler.errors import FsedpError, source_context

from fsedp_compiler.isa.opcodes import (
    ANY_ADDR,
    ANY_UNIT,
    COLUMNS,
    CONDITIONS,
    CURRENT,
    DIRECTIONS,
    INSTR_DTYPE,
    MASK,
    MODES,
    OPS,
    POLICIES,
    STREAM,
    VERSION,
    Field,
    OpInfo,
)
from fsedp_compiler.isa.program import MAX_PORTS, Program, channel_message, port_message

_MNEMONIC_WIDTH = 7
_OMITTABLE = frozenset({"l", "s"})  # may be omitted (meaning *) in dynamic programs
_MAX = {"flag": 1, "tag": 0xFFFF, "u16": 0xFFFF, "chiplet": 0xFFFF, "port": 0xFF, "channel": 0xFF, "u32": 0xFFFFFFFF,
        "id": 0xFFFFFFFF, "ring": 0xFF, "addr": 0xFFFF_FFFF_FFFF_FFFF}


def _ports_comment(nports: int) -> str:
    if nports == 0:
        return "# no ports"
    if nports <= 4:
        return "# neighbour chiplet of " + ", ".join(f"port {i}" for i in range(nports))
    return "# neighbour chiplet of each port, in port order"


def _format_column(field: Field, values: np.ndarray, dynamic: bool) -> list[str]:
    """One field's text for a group of records, each with a leading space ('' if omitted)."""
    vals = values.tolist()
    key, kind = field.key, field.kind
    if kind in ("tag", "port", "channel"):
        star = CURRENT if kind == "tag" else ANY_UNIT
        starred = "" if dynamic and key in _OMITTABLE else f" {key}=*"
        return [starred if v == star else f" {key}={v}" for v in vals]
    if kind in ("id", "flag", "ring"):
        return [f" {key}={v}" if v else "" for v in vals]
    if kind in ("u16", "u32", "chiplet"):
        return [f" {key}={v}" for v in vals]
    if kind == "addr":
        return [f" {key}=*" if v == ANY_ADDR else f" {key}={v:#x}" for v in vals]
    if kind == "mask":  # completed by `_merge_masks` for sets wider than 64 chiplets
        return [f" {key}={v:#x}" for v in vals]
    if kind == "dir":
        return [f" dir={DIRECTIONS[v]}" for v in vals]
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


def format_record(record: tuple[int, ...] | np.void, dynamic: bool = False) -> str:
    """One record as its text line (a STREAM shows only its first 64 members)."""
    arr = np.zeros(1, dtype=INSTR_DTYPE)
    arr[0] = tuple(record)
    return _format_group(OPS[int(arr["opcode"][0])], arr, dynamic)[0]


def stream_members(instrs: np.ndarray, i: int) -> int:
    """The whole member set of the STREAM at record `i` (its MASK records included)."""
    value = int(instrs["wide"][i])
    for w in range(1, int(instrs["n"][i]) + 1):
        value |= int(instrs["wide"][i + w]) << (64 * w)
    return value


def to_text(p: Program) -> str:
    """The `.fsa` text of `p`; `parse_text(to_text(p)) == p`."""
    ports = " ".join(str(n) for n in p.ports)
    ports_line = f".ports {ports}" if ports else ".ports"
    head = [f"# fsedpc ISA v{VERSION}", f".chiplet {p.chiplet}", f".mode {p.mode}", f".channels {p.channels}",
            f"{ports_line:<21} {_ports_comment(len(p.ports))}"]
    instrs = p.instrs
    op = instrs["opcode"]
    dynamic = p.mode == "dynamic"
    lines = np.empty(len(instrs), dtype=object)
    present = np.flatnonzero(np.bincount(op, minlength=256)).tolist()
    for value in present:
        where = np.flatnonzero(op == value) if len(present) > 1 else slice(None)
        if value == MASK:
            lines[where] = None
            continue
        lines[where] = _format_group(OPS[value], instrs[where], dynamic)
    wide = np.flatnonzero((op == STREAM) & (instrs["n"] > 0)).tolist()
    for i in wide:
        text = lines[i]
        lines[i] = text[: text.index(" members=")] + f" members={stream_members(instrs, i):#x}"
    body = [line for line in lines.tolist() if line is not None] if len(wide) or (op == MASK).any() else lines.tolist()
    return "\n".join(head + body) + "\n"


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
        self.optional_bits = sum(self.bit[f.key] for f in info.fields if f.kind in ("id", "flag", "ring"))


# MASK records exist only in the binary form
_SYNTAX = {info.mnemonic: _Syntax(info) for info in OPS.values() if info.value != MASK}


class _TextError(Exception):
    def __init__(self, token: int, message: str) -> None:
        super().__init__(message)
        self.token = token  # index of the offending token on the line
        self.message = message


def _int_value(val: str) -> int | None:
    if val.isascii() and val.isdigit():
        return int(val) if len(val) < 80 else None
    if _HEX.match(val) and len(val) < 4100:  # member sets of up to 16384 chiplets
        return int(val, 16)
    return None


def _field_value(field: Field, val: str, tok: int) -> int:
    kind = field.kind
    if kind == "dir":
        if val in DIRECTIONS.values():
            return {v: k for k, v in DIRECTIONS.items()}[val]
        raise _TextError(tok, f"dir must be cw, ccw, short or short-ccw, not {val!r}")
    if val == "*" and kind in ("tag", "port", "channel", "addr"):
        return {"tag": CURRENT, "addr": ANY_ADDR}.get(kind, ANY_UNIT)
    number = _int_value(val)
    if number is None:
        if _NEG.match(val):
            raise _TextError(tok, f"value {val} out of range for {field.key} (must be >= 0)")
        raise _TextError(tok, f"non-integer value {val!r} for {field.key}")
    if kind != "mask" and number > _MAX[kind]:
        star = " or *" if kind in ("tag", "port", "channel", "addr") else ""
        raise _TextError(tok, f"value {val} out of range for {field.key} (0..{_MAX[kind]}{star})")
    return number


def _field_token(syntax: _Syntax, tok: str, t: int, nports: int, channels: int) -> tuple[int, int, int, str]:
    """One field token: (record column index, value, field bit, key)."""
    info = syntax.info
    key, eq, val = tok.partition("=")
    if eq:
        field = syntax.keyed.get(key)
        if field is None:
            raise _TextError(t, f"unknown field {key!r} for {info.mnemonic}{_expected(info)}")
        value = _field_value(field, val, t)
        if field.kind == "port" and value != ANY_UNIT and value >= nports:
            raise _TextError(t, port_message(info.mnemonic, value, nports))
        if field.kind == "channel" and value != ANY_UNIT and value >= channels:
            raise _TextError(t, channel_message(info.mnemonic, value, channels))
    else:
        field = syntax.positional
        if field is None:
            raise _TextError(t, f"expected key=value, got {tok!r} for {info.mnemonic}{_expected(info)}")
        found = syntax.words.get(tok)
        if found is None:
            raise _TextError(t, f"unknown {info.mnemonic} {field.key} {tok!r} ({' | '.join(syntax.words)})")
        value, key = found, field.key
    return syntax.index[key], value, syntax.bit[key], key


class _InstructionParser:
    """Parses the instruction lines of one program; caches every distinct (mnemonic, token)."""

    def __init__(self, dynamic: bool, nports: int, channels: int) -> None:
        self.dynamic = dynamic
        self.nports = nports
        self.channels = channels
        self.caches: dict[str, dict[str, tuple[int, int, int, str]]] = {m: {} for m in _SYNTAX}

    def parse(self, toks: list[str]) -> list[list[int]]:
        """The records of one line: one, or a STREAM and its MASK records."""
        mnemonic = toks[0]
        syntax = _SYNTAX.get(mnemonic)
        if syntax is None:
            raise _TextError(0, f"unknown mnemonic {mnemonic!r}")
        cache = self.caches[mnemonic]
        rec = [0] * len(COLUMNS)
        rec[0] = syntax.info.value
        seen = 0
        wide = 0
        for t in range(1, len(toks)):
            tok = toks[t]
            hit = cache.get(tok)
            if hit is None:
                hit = _field_token(syntax, tok, t, self.nports, self.channels)
                if len(cache) < 100_000:
                    cache[tok] = hit
            index, value, bit, key = hit
            if seen & bit:
                raise _TextError(t, f"duplicate field {key!r}")
            seen |= bit
            if index == COLUMNS.index("wide") and syntax.info.value == STREAM:
                wide = value
                value &= 0xFFFF_FFFF_FFFF_FFFF
            rec[index] = value
        missing = syntax.all_bits & ~seen & ~syntax.optional_bits
        if missing:
            for field in syntax.info.fields:
                if not missing & syntax.bit[field.key]:
                    continue
                if self.dynamic and field.key in _OMITTABLE:
                    rec[syntax.index[field.key]] = CURRENT
                    continue
                what = f"field '{field.key}='" if field.key in syntax.keyed else field.key
                raise _TextError(0, f"missing {what} for {mnemonic}{_expected(syntax.info)}")
        if syntax.info.value != STREAM or wide >> 64 == 0:
            return [rec]
        words = []
        rest = wide >> 64
        while rest:
            words.append(rest & 0xFFFF_FFFF_FFFF_FFFF)
            rest >>= 64
        rec[COLUMNS.index("n")] = len(words)
        out = [rec]
        for w, bits in enumerate(words, 1):
            mask = [0] * len(COLUMNS)
            mask[0], mask[COLUMNS.index("n")], mask[COLUMNS.index("wide")] = MASK, w, bits
            out.append(mask)
        return out


def _expected(info: OpInfo) -> str:
    if not info.fields:
        return " (it takes no fields)"
    parts = [f.key if f.kind in ("cond", "policy") else f"{f.key}=" for f in info.fields]
    return f" (expects {' '.join(parts)})"


def _directive(toks: list[str], state: dict[str, object]) -> None:
    """Apply one directive line (`.chiplet`, `.mode`, `.channels`, `.ports`) to `state`."""
    name, args = toks[0], toks[1:]
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
        if len(values) > MAX_PORTS:
            raise _TextError(0, f"more than {MAX_PORTS} ports")
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
    return parse_text_lines(text, path)[0]


def parse_text_lines(text: str, path: str = "<text>") -> tuple[Program, list[int]]:
    """Parse `.fsa` text; also the source line of every record (for located machine errors)."""
    state: dict[str, object] = {}
    rows: list[list[int]] = []
    where: list[int] = []
    parser: _InstructionParser | None = None
    lineno = 0
    lines = text.split("\n")
    try:
        for lineno, raw in enumerate(lines, 1):  # noqa: B007 (the handler reads lineno)
            hash_at = raw.find("#")
            toks = (raw if hash_at < 0 else raw[:hash_at]).split()
            if not toks:
                continue
            if toks[0][0] == ".":
                if parser is not None:
                    raise _TextError(0, f"directive {toks[0]} after the first instruction")
                _directive(toks, state)
                continue
            if parser is None:
                for name in (".chiplet", ".mode"):
                    if name not in state:
                        raise _TextError(0, f"missing {name} directive before the first instruction")
                parser = _InstructionParser(state[".mode"] == "dynamic", len(state.get(".ports", ())),  # type: ignore[arg-type]
                                            state.get(".channels", 0))  # type: ignore[arg-type]
            recs = parser.parse(toks)
            rows.extend(recs)
            where.extend([lineno] * len(recs))
    except _TextError as err:
        raw = lines[lineno - 1]
        hash_at = raw.find("#")
        code = raw if hash_at < 0 else raw[:hash_at]
        col = list(_TOKEN.finditer(code))[err.token].start() + 1
        raise FsedpError(err.message, path=path, line=lineno, col=col,
                         context=source_context(text, lineno, col)) from None
    for name in (".chiplet", ".mode"):
        if name not in state:
            last = max(1, len(lines) - (1 if lines and lines[-1] == "" else 0))
            raise FsedpError(f"missing {name} directive", path=path, line=last, col=1)
    instrs = np.array([tuple(r) for r in rows], dtype=INSTR_DTYPE) if rows else np.zeros(0, INSTR_DTYPE)
    try:
        program = Program(state[".chiplet"], state[".mode"], state.get(".ports", ()),  # type: ignore[arg-type]
                          state.get(".channels", 0), instrs)  # type: ignore[arg-type]
    except ValueError as err:  # e.g. a wait without an id: located at its line
        message = str(err)
        match = re.search(r"instruction (\d+): (.*)", message)
        if match:
            line = where[int(match.group(1))]
            raise FsedpError(match.group(2), path=path, line=line, col=1,
                             context=source_context(text, line, 1)) from None
        raise FsedpError(message, path=path) from None
    return program, where
