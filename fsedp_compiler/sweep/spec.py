"""The sweep spec: a TOML file validated by a pydantic schema, each error at `spec.toml:LINE` and
its field path (`grid[1].tokens[2]: must be >= 1, got 0`).

Every key is named like the `fsedpc bench` option it sweeps and takes one value, a list (an axis)
or a range table (`{ start = 16, stop = 256, factor = 2 }`, `{ start = 64, stop = 512, step = 64 }`).
Keys at the top level are the defaults of every `[[grid]]`; without grids the top level is the
one grid. `[set]` overrides target parameters (`link.gbps = [64, 128]`), each an axis too.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr,
                      ValidationError, field_validator, model_validator)

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import read_text
from fsedp_compiler.files.tomlio import loads_toml
from fsedp_compiler.inputs.model import DTYPE_BYTES
from fsedp_compiler.sweep.locate import line_of, normalize

#: Most values one range may expand to (a typo like `factor = 1.0001` should not hang the sweep).
MAX_RANGE = 10_000
#: Limits of a point's sizes (the machine's, as program.json and traces have them), checked before any work.
MAX_TOKENS = 1 << 20
MAX_STEPS = 65535
MAX_BUFFERS = 1 << 16
MAX_SHARDS = 65534
MAX_LAYERS = 65535
MAX_SEED = (1 << 63) - 1
#: `fsedpc bench`'s defaults, used where neither the grid nor the top level says otherwise.
DEFAULTS: dict[str, list[Any]] = {
    "target": ["paper-2x2"], "tokens": [16, 64, 256], "steps": [4], "buffers": [0], "shards_per_chiplet": [0],
    "seed": [0], "dtype": [None], "moe_layers": [None], "dense": [True],
}
DEFAULT_STRATEGIES = ("fsedp", "ep", "ep-serial", "hydra", "tp", "dp", "fsdp", "ep-cache")


def expand_range(table: dict[str, Any]) -> list[float | int]:
    """`{start, stop, step}` (arithmetic) or `{start, stop, factor}` (geometric), stop included."""
    if extra := sorted(set(table) - {"start", "stop", "step", "factor"}):
        raise ValueError(f"a range has start, stop and step or factor, not {extra[0]!r}")
    for key in ("start", "stop"):
        if key not in table:
            raise ValueError(f"a range needs {key}")
    values = [table[k] for k in ("start", "stop", "step", "factor") if k in table]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        raise ValueError("range bounds, step and factor must be finite numbers")
    if ("step" in table) == ("factor" in table):
        raise ValueError("a range needs exactly one of step (arithmetic) or factor (geometric)")
    start, stop = table["start"], table["stop"]
    if stop < start:
        raise ValueError(f"range stop {stop} is below its start {start}")
    out: list[float | int] = []
    value = start
    while value <= stop * (1 + 1e-12) and len(out) <= MAX_RANGE:
        out.append(value)
        if "step" in table:
            if table["step"] <= 0:
                raise ValueError(f"range step must be > 0, got {table['step']}")
            value = start + len(out) * table["step"]
        else:
            if table["factor"] <= 1 or start <= 0:
                raise ValueError("a geometric range needs start > 0 and factor > 1")
            value = value * table["factor"]
    if len(out) > MAX_RANGE:
        raise ValueError(f"range expands to more than {MAX_RANGE} values")
    ints = all(isinstance(v, int) for v in values)
    return [int(round(v)) if ints else (float(v) if not float(v).is_integer() else v) for v in out]


def _is_range(value: Any) -> bool:
    return isinstance(value, dict) and bool(set(value) & {"start", "stop", "step", "factor"})


def as_axis(value: Any) -> list[Any]:
    """One value → [value]; a list stays; a range table expands."""
    if _is_range(value):
        return expand_range(value)
    return value if isinstance(value, list) else [value]


def _nonempty(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("an empty list sweeps nothing; give at least one value")
    return values


Dtype = Literal[tuple(DTYPE_BYTES)]  # type: ignore[valid-type]


def _axis(item: Any) -> Any:
    return Annotated[list[item], BeforeValidator(as_axis), Field(min_length=1)]


class RoutingSpec(BaseModel):
    """Synthetic routing (`skew`, `locality`; seeded by `seed`) or an imported trace file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr | None = None
    skew: StrictStr = "uniform"
    locality: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    trace: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        """`"uniform"` or `"zipf:1.2"` is shorthand for `{ skew = ... }`."""
        return {"skew": value} if isinstance(value, str) else value

    @field_validator("skew")
    @classmethod
    def _skew(cls, value: str) -> str:
        from fsedp_compiler.inputs.trace_synth import parse_skew

        try:
            parse_skew(value)
        except FsedpError as err:
            raise ValueError(err.message) from None
        return value.strip().lower()

    @field_validator("locality", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number in [0, 1], got {value!r}")
        return value

    @model_validator(mode="after")
    def _trace_alone(self) -> RoutingSpec:
        if self.trace is not None and (self.skew != "uniform" or self.locality):
            raise ValueError("a trace brings its own routing: give trace alone, without skew or locality")
        return self

    @property
    def label(self) -> str:
        """The name rows and reports use: `name`, else derived from the parameters."""
        if self.name:
            return self.name
        if self.trace is not None:
            return Path(self.trace).stem
        return self.skew + (f"+loc{self.locality:g}" if self.locality else "")


class GridSpec(BaseModel):
    """One cartesian product of axes; a key left out takes the top level's value, then bench's default."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr | None = None
    model: _axis(StrictStr) | None = None  # type: ignore[valid-type]
    target: _axis(StrictStr) | None = None  # type: ignore[valid-type]
    tokens: _axis(Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]) | None = None  # type: ignore[valid-type]
    steps: _axis(Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)]) | None = None  # type: ignore[valid-type]
    strategies: Union[Literal["all", "default"], list[StrictStr]] | None = None
    buffers: _axis(Annotated[StrictInt, Field(ge=0, le=MAX_BUFFERS)]) | None = None  # type: ignore[valid-type]
    shards_per_chiplet: _axis(Annotated[StrictInt, Field(ge=0, le=MAX_SHARDS)]) | None = None  # type: ignore[valid-type]
    seed: _axis(Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]) | None = None  # type: ignore[valid-type]
    dtype: _axis(Dtype) | None = None  # type: ignore[valid-type]
    moe_layers: _axis(Union[Annotated[StrictInt, Field(ge=1, le=MAX_LAYERS)],  # type: ignore[valid-type]
                            Annotated[list[Annotated[StrictInt, Field(ge=0, le=MAX_LAYERS)]],
                                      Field(min_length=1)]]) | None = None
    dense: _axis(StrictBool) | None = None  # type: ignore[valid-type]
    routing: _axis(RoutingSpec) | None = None  # type: ignore[valid-type]
    functional: StrictBool | None = None
    hydra_skip_single: StrictBool | None = None
    set: dict[str, Any] | None = None

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, value: Any) -> Any:
        if isinstance(value, list):
            from fsedp_compiler.strategies import NAMES

            known = NAMES
            _nonempty(value)
            for i, name in enumerate(value):
                if name not in known:
                    close = difflib.get_close_matches(name, known, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(known)}"
                    raise ValueError(f"unknown strategy '{name}' at position {i}{hint}")
            if len(set(value)) != len(value):
                raise ValueError("lists a strategy twice")
        return value

    @field_validator("set")
    @classmethod
    def _set(cls, value: dict[str, Any]) -> dict[str, Any]:
        return flatten_set(value)  # each entry becomes an axis in parse_spec, where errors can be located


class SweepSpecModel(GridSpec):
    """The whole file: defaults at the top level, then `[[grid]]` tables."""

    description: StrictStr = ""
    grid: list[GridSpec] = Field(default_factory=list)


def flatten_set(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{link = {gbps = [...]}}` or `{"link.gbps" = [...]}` → `{"link.gbps": [...]}` (ranges stay whole)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_range(value):
            out.update(flatten_set(value, path + "."))
        else:
            out[path] = value
    return out


# --- the validated spec ---------------------------------------------------------------------------

AXES: tuple[str, ...] = ("model", "target", "tokens", "steps", "strategies", "buffers", "shards_per_chiplet", "seed",
                         "dtype", "moe_layers", "dense", "routing", "functional", "hydra_skip_single")


@dataclass
class Grid:
    """One grid with every axis resolved (its own value, the top level's or the default) and, for each
    axis, the field path it came from (for errors about a value, e.g. a missing model file)."""

    index: int
    name: str
    axes: dict[str, list[Any]]
    sets: dict[str, list[Any]]
    origin: dict[str, tuple[str | int, ...]] = field(default_factory=dict)

    def loc(self, axis: str, i: int | None = None) -> tuple[str | int, ...]:
        base = self.origin.get(axis, (axis,))
        return base if i is None else (*base, i)


@dataclass
class SweepSpec:
    """A parsed, schema-checked spec: its grids and where it came from (for located errors)."""

    path: str
    text: str
    name: str
    description: str
    grids: list[Grid]

    @property
    def base(self) -> Path:
        """Relative model, target and trace paths are relative to the spec file."""
        return Path(self.path).resolve().parent

    def error(self, loc: Sequence[str | int], message: str) -> FsedpError:
        """An error about the field at `loc`, at its TOML line."""
        return FsedpError(message, path=self.path, line=line_of(self.text, loc), field=format_loc(loc))


def format_loc(loc: Sequence[str | int]) -> str:
    """`("grid", 1, "set", "link.gbps", 0)` → `grid[1].set.link.gbps[0]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_spec(path: str) -> SweepSpec:
    """Read, parse and validate a sweep spec; every error names the file, line and field."""
    text = read_text(path, "sweep spec")
    return parse_spec(text, path)


def parse_spec(text: str, path: str) -> SweepSpec:
    doc = loads_toml(text, path)
    try:
        spec = SweepSpecModel.model_validate(doc)
    except ValidationError as err:
        raise _located(err, doc, text, path) from None
    top = spec.model_fields_set
    grids_in = spec.grid or [GridSpec()]
    grids: list[Grid] = []
    for i, g in enumerate(grids_in):
        axes: dict[str, list[Any]] = {}
        origin: dict[str, tuple[str | int, ...]] = {}
        for axis in AXES:
            if axis in g.model_fields_set and spec.grid:
                value, origin[axis] = getattr(g, axis), ("grid", i, axis)
            elif axis in top:
                value, origin[axis] = getattr(spec, axis), (axis,)
            else:
                value = None
            axes[axis] = _resolve(axis, value)
        if not axes["model"]:
            where = ("grid", i) if spec.grid else ()
            raise FsedpError("no model to sweep: give model = \"path.mlir\" (or a list) at the top level or in "
                             "every [[grid]]", path=path, line=line_of(text, where) if where else None,
                             field=format_loc((*where, "model")))
        sets, set_origin = {}, {}
        for where, table in ((("set",), spec.set), (("grid", i, "set"), g.set if spec.grid else None)):
            for key, value in (table or {}).items():
                loc = (*where, key)
                try:
                    sets[key], set_origin[key] = _nonempty(as_axis(value)), loc
                except ValueError as err:
                    raise FsedpError(str(err), path=path, line=line_of(text, loc), field=format_loc(loc)) from None
        origin.update({f"set.{k}": v for k, v in set_origin.items()})
        grids.append(Grid(i, g.name or (f"grid{i}" if spec.grid else "grid"), axes, sets, origin))
    name = spec.name or Path(path).stem
    return SweepSpec(path=path, text=text, name=name, description=spec.description, grids=grids)


def _resolve(axis: str, value: Any) -> list[Any]:
    """An axis's values: given, else bench's default."""
    if axis == "strategies":
        if value is None or value == "default":
            return list(DEFAULT_STRATEGIES)
        if value == "all":
            from fsedp_compiler.pipeline.compile import all_strategies

            return list(all_strategies())
        return list(value)
    if axis == "routing":
        return list(value) if value is not None else [RoutingSpec()]
    if axis in ("functional", "hydra_skip_single"):
        return [bool(value)]
    if value is None:
        return list(DEFAULTS.get(axis, []))
    return list(value)


# --- pydantic errors → one located message ----------------------------------------------------------

_FIELDS: dict[str, tuple[str, ...]] = {
    "top": tuple(SweepSpecModel.model_fields), "grid": tuple(GridSpec.model_fields),
    "routing": tuple(RoutingSpec.model_fields),
}


def _prune(loc: Sequence[str | int], doc: Any, missing: bool) -> tuple[str | int, ...]:
    """The part of pydantic's `loc` that indexes into the document (drops union member tags); a
    missing field keeps its own name."""
    out: list[str | int] = []
    node = doc
    for i, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and not isinstance(node, dict) and i < len(loc) - 1:
            continue  # a union member's tag, e.g. 'list[constrained-int]'
        else:
            if missing and i == len(loc) - 1:
                out.append(part)
            break
        out.append(part)
    return tuple(out)


def _fields_at(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    if "routing" in loc:
        return _FIELDS["routing"]
    return _FIELDS["grid"] if loc[:1] == ("grid",) else _FIELDS["top"]


def _located(err: ValidationError, doc: dict[str, Any], text: str, path: str) -> FsedpError:
    """The first schema error as `path:line: error: field: message`."""
    # a union reports one error per member: the one that got deepest into the value is the real one
    pruned = [(e, _prune(e["loc"], doc, e["type"] == "missing")) for e in err.errors()]
    first = pruned[0][1]
    e, loc = max((p for p in pruned if p[1][:len(first)] == first), key=lambda p: len(p[1]))
    if e["type"] == "extra_forbidden":
        known = [f for f in _fields_at(loc[:-1]) if f != "grid" or not loc[:1] == ("grid",)]
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of {', '.join(known)}"
        message = f"unknown field; {hint}"
    elif e["type"] == "too_short":
        message = "an empty list sweeps nothing; give at least one value"
    else:
        message = re.sub(r"^(Value|Assertion) error, ", "", e["msg"])
        message = message[0].lower() + message[1:] if message else "invalid value"
        got = e.get("input")
        if e["type"] not in ("missing", "value_error", "assertion_error") and not isinstance(got, (dict, list)):
            message += f", got {got!r}"
        elif e["type"] not in ("missing", "value_error") and isinstance(got, (dict, list)):
            message += f", got a {'table' if isinstance(got, dict) else 'list'}"
        message = _plain(message)
    return FsedpError(message, path=path, line=line_of(text, normalize(loc)), field=format_loc(loc) or None)


def _plain(message: str) -> str:
    """pydantic's wording in the tool's: 'input should be ...' → 'must be ...'."""
    message = message.replace("input should be ", "must be ").replace("Input should be ", "must be ")
    for long, short in (("a valid integer", "an integer"), ("a valid boolean", "true or false"),
                        ("greater than or equal to", ">="), ("less than or equal to", "<="),
                        ("a valid string", "a string"), ("a valid number", "a number")):
        message = message.replace(long, short)
    return message
