"""The schema of `program.json` (format fsedpc-program, version 2), checked before anything runs.

A program directory is untrusted input: every field is typed and ranged here, with limits that
keep the machine's memory and time bounded, and cross-field rules (one program per chiplet, the
strategy matching the layers, static programs naming their trace) are checked after parsing.
Errors name the field path (`layers.0.buffers`).

The schema is written for pydantic, whose import and model building cost more than loading a
one-layer program: `parse_manifest` first runs `fast_parse`, a plain-Python check of the same
schema that is at least as strict (anything it is unsure of, it refuses), and imports pydantic
only when that check refuses, to accept what pydantic accepts or give pydantic's message.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

#: Limits of what the machine accepts (the machine model and the ISA's field widths).
MAX_CHIPLETS = 4096
MAX_EXPERTS = 65534
MAX_SHARDS = 65534
MAX_LAYERS = 65535
MAX_STEPS = 65535
MAX_TOKENS = 1 << 20
MAX_DIM = 1 << 20

_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_SHA = r"^[0-9a-f]{64}$"
DTYPE_NAMES = ("bf16", "fp16", "int8", "fp8")
#: Every strategy a layer can run (`fsedp_compiler/strategies.py`); a program is one of them or `auto`.
STRATEGY_NAMES = ("fsedp", "fsedp-fullring", "fsedp-nocomp", "fsedp-fixeddir", "fsedp-perexpert", "fsedp-onering",
                  "fsedp-unpaired",
                  "ep", "ep-serial", "hydra", "ep-cache", "tp", "tp-per-expert", "dp", "fsdp")
BASELINE_NAMES = ("ep", "ep-serial", "hydra", "ep-cache", "tp", "tp-per-expert", "dp", "fsdp")

if TYPE_CHECKING:  # the pydantic classes, for type checkers; at run time `__getattr__` loads them on demand
    from fsedp_compiler.sim.manifest_schema import Manifest


def __getattr__(name: str) -> Any:
    """The pydantic schema classes (`Manifest`, `LayerModel`...), imported when first asked for."""
    if name.startswith("__"):
        raise AttributeError(name)
    from fsedp_compiler.sim import manifest_schema

    try:
        return getattr(manifest_schema, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def parse_manifest(text: str) -> Any:
    """Validate program.json text; raises ValueError('field.path: message') on the first problem.
    Returns the checked fields as attributes (`m.target.chiplet.sram_mib`, `m.layers[0].shards`)."""
    checked = fast_parse(text)
    if checked is not None:
        return checked
    return _pydantic_parse(text)


def _pydantic_parse(text: str) -> Any:
    from pydantic import ValidationError

    from fsedp_compiler.sim.manifest_schema import Manifest

    try:
        return Manifest.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["loc"] == ("manifest_sha256",) and first["type"] == "missing":
            raise ValueError(f"{where}: missing: program.json has no digest of its own fields (written by hand or "
                             "by an older fsedpc); recompile") from None
        raise ValueError(f"{where}: {first['msg']}") from None


# --- the fast check -------------------------------------------------------------------------
# Each checker takes a JSON value and returns the checked value, or raises _Refused. It accepts
# only what the pydantic schema surely accepts, and gives what pydantic would give (a float
# field's int as a float, an array as a tuple or a list, absent fields at their defaults).


class _Refused(Exception):
    """The fast check is not sure: pydantic decides (and words the error)."""


class Checked:
    """A checked object of program.json: its fields as read-only attributes."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def model_dump(self) -> dict[str, Any]:
        """The fields as plain values (like pydantic's `model_dump`)."""
        return {k: _dump(v) for k, v in self._fields.items()}

    def __repr__(self) -> str:
        return f"Checked({self._fields!r})"


def _dump(v: Any) -> Any:
    if isinstance(v, Checked):
        return v.model_dump()
    if isinstance(v, (list, tuple)):
        return type(v)(_dump(x) for x in v)
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


_I64 = (1 << 63) - 1


def _int(lo: int, hi: int = _I64):
    def check(v: Any) -> int:
        if type(v) is not int or not lo <= v <= hi:
            raise _Refused
        return v
    return check


def _float(lo: float, strict_lo: bool):
    def check(v: Any) -> float:
        if type(v) is not float and type(v) is not int:
            raise _Refused
        f = float(v)
        if not math.isfinite(f) or f > 1e12 or f < lo or (strict_lo and f == lo):
            raise _Refused
        return f
    return check


def _str(pattern: str | None = None, min_length: int = 0, max_length: int | None = None):
    body = re.compile(pattern[1:-1]) if pattern else None  # fullmatch: no newline before the end

    def check(v: Any) -> str:
        if type(v) is not str or len(v) < min_length or (max_length is not None and len(v) > max_length):
            raise _Refused
        if body is not None and not body.fullmatch(v):
            raise _Refused
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: let pydantic's parser judge
                raise _Refused from None
        return v
    return check


def _lit(*values: Any):
    allowed = frozenset(values)
    kinds = {type(v) for v in values}

    def check(v: Any) -> Any:
        if type(v) not in kinds or v not in allowed:
            raise _Refused
        return v
    return check


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _Refused
    return v


def _opt(inner):
    def check(v: Any) -> Any:
        return None if v is None else inner(v)
    return check


def _list(item, min_length: int = 0, max_length: int | None = None):
    def check(v: Any) -> list:
        if type(v) is not list or len(v) < min_length or (max_length is not None and len(v) > max_length):
            raise _Refused
        return [item(x) for x in v]
    return check


def _tuple(*items):
    def check(v: Any) -> tuple:
        if type(v) is not list or len(v) != len(items):
            raise _Refused
        return tuple(f(x) for f, x in zip(items, v))
    return check


def _dict(key, value):
    def check(v: Any) -> dict:
        if type(v) is not dict:
            raise _Refused
        return {key(k): value(x) for k, x in v.items()}
    return check


_REQUIRED = object()


def _model(**fields: Any):
    """An object: every field (checker, or (checker, default)); no field besides them."""
    spec = {name: f if isinstance(f, tuple) else (f, _REQUIRED) for name, f in fields.items()}

    def check(v: Any) -> Checked:
        if type(v) is not dict or not v.keys() <= spec.keys():
            raise _Refused
        out = {}
        for name, (f, default) in spec.items():
            if name in v:
                out[name] = f(v[name])
            elif default is _REQUIRED:
                raise _Refused
            else:
                out[name] = default() if callable(default) else default
        return Checked(out)
    return check


_sha = _str(_SHA)
_file = _str(_FILE.pattern)
_pos = _float(0.0, True)
_nonneg = _float(0.0, False)
_chiplet = _int(0, MAX_CHIPLETS - 1)
_per_dtype = _model(**{d: _nonneg for d in DTYPE_NAMES})
_cost = _model(min_tokens=(_int(1, 1 << 20), 1), op_overhead_ns=(_int(0, 10**9), 0),
               scheduler_ns_per_expert=(_int(0, 10**9), 2))
_target = _model(
    name=_str(min_length=1, max_length=200), description=(_str(max_length=10_000), ""),
    chiplets=_int(2, MAX_CHIPLETS), topology=_str(min_length=1, max_length=100),
    links=_list(_tuple(_chiplet, _chiplet), 1, MAX_CHIPLETS * 16), dram_at=_list(_chiplet, 1, MAX_CHIPLETS),
    ring=_list(_chiplet, 2, MAX_CHIPLETS), rings=(_opt(_list(_list(_chiplet, 2, MAX_CHIPLETS), 1, 8)), None),
    chiplet=_model(tops=_model(**{d: _pos for d in DTYPE_NAMES}), sram_mib=_pos, dram_channels=_int(1, 64),
                   dram_gbps_per_channel=_pos, dram_latency_ns=_nonneg, dram_pj_per_bit=_nonneg,
                   sram_pj_per_bit=_nonneg, pj_per_mac=_per_dtype),
    link=_model(gbps=_pos, latency_ns=_nonneg, pj_per_bit=_nonneg),
    cost=(_opt(_cost), None))
_layer = _model(
    index=_int(0, MAX_LAYERS), d_model=_int(1, MAX_DIM), d_ffn=_int(1, MAX_DIM), num_experts=_int(1, MAX_EXPERTS),
    top_k=_int(1, MAX_EXPERTS), num_shared=_int(0, 64), d_ffn_shared=_int(0, MAX_DIM),
    activation=_lit("swiglu", "gelu"), dtype=_lit(*DTYPE_NAMES), shards=_int(1, MAX_SHARDS),
    buffers=_int(2, 1 << 16), shard_bytes=_int(1), shared_shard_bytes=_int(0),
    channels=_list(_tuple(_chiplet, _int(0, 63))), strategy=(_opt(_lit(*STRATEGY_NAMES)), None),
    baseline=(_opt(_lit(*BASELINE_NAMES)), None), hydra_skip_single=(_bool, False),
    order=(_opt(_lit("paired", "work", "id")), None), direction=(_opt(_lit("per-shard", "balanced", "cw")), None),
    trajectory=(_opt(_lit("nearest", "fullring", "single-entry")), None), rings=(_opt(_lit("all", "one")), None))
_dense = _model(index=_int(0, MAX_LAYERS), flops_per_token=_int(0, 1 << 50), weight_bytes=_int(0, 1 << 50),
                kind=(_str(max_length=100), "attention"))
_program = _model(chiplet=_chiplet, fsa=(_opt(_file), None), bin=_file, instructions=_int(0, 1 << 32),
                  fsa_sha256=(_opt(_sha), None), bin_sha256=_sha)
_manifest = _model(
    format=_lit("fsedpc-program"), version=_lit(2), model=_str(max_length=200), num_layers=_int(1, MAX_LAYERS),
    strategy=_lit(*STRATEGY_NAMES, "auto"), edited=_bool, mode=_lit("static", "dynamic"), target=_target,
    layers=_list(_layer, 0, MAX_LAYERS), dense=_list(_dense, 0, MAX_LAYERS),
    programs=_list(_program, 2, MAX_CHIPLETS), files=_dict(_file, _sha), trace=(_opt(_file), None),
    steps=(_opt(_int(1, MAX_STEPS)), None), tokens=(_opt(_int(1, MAX_TOKENS)), None), manifest_sha256=_sha)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Refused  # a repeated key: pydantic's parser decides which counts
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise _Refused  # NaN / Infinity are not JSON


def fast_parse(text: str) -> Checked | None:
    """program.json's fields, checked against the schema without pydantic; None when the check is
    not sure (a problem, or anything unusual), which `parse_manifest` then hands to pydantic."""
    try:
        return _manifest(json.loads(text, object_pairs_hook=_no_repeats, parse_constant=_no_constant))
    except (_Refused, ValueError, RecursionError):
        return None
