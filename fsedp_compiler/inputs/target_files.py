"""Targets from files: the named presets (`examples/targets/*.toml`) and target TOML, validated
as untrusted input (every field typed, finite and within the limits below; errors name the
field and its line).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import read_text
from fsedp_compiler.files.tomlio import loads_toml
from fsedp_compiler.inputs.target import _DTYPE_FALLBACK, DTYPES, ChipletParams, CostParams, LinkParams, Target
from fsedp_compiler.inputs.topology import (corners, grid_shape, ring_problem, topology_edges, topology_problem,
                                            virtual_ring)


PRESET_PACKAGE = "fsedp_compiler.presets"


def preset_names() -> list[str]:
    """Names of the bundled presets (`examples/targets/*.toml`)."""
    root = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


@functools.lru_cache(maxsize=None)
def load_preset(name: str) -> Target:
    """A bundled preset, parsed once per process (a `Target` is immutable)."""
    root = resources.files(PRESET_PACKAGE)
    entry = root / f"{name}.toml"
    if not entry.is_file():
        known = ", ".join(preset_names())
        raise FsedpError(f"unknown target preset '{name}'; known presets: {known}")
    return parse_target_toml(entry.read_text(encoding="utf-8"), f"{name}.toml")


def resolve_target(spec: str) -> Target:
    """A preset name, or a path to a target TOML file."""
    if spec.endswith(".toml") or "/" in spec or Path(spec).is_file():
        return load_target_file(spec)
    return load_preset(spec)


def load_target_file(path: str) -> Target:
    return parse_target_toml(read_text(path, "target file"), path)


#: Limits of a target (the machine's, as in program.json): chiplets, DRAM channels per chiplet, any number.
MAX_CHIPLETS = 4096
MAX_DRAM_CHANNELS = 64
MAX_NUMBER = 1e12

_TOP_KEYS = {"name", "description", "chiplets", "topology", "links", "dram_at", "ring", "chiplet", "link", "cost"}
_CHIPLET_KEYS = {
    "tops", "clock_ghz", "macs_per_cycle", "sram_mib", "dram_channels", "dram_gbps_per_channel",
    "dram_latency_ns", "dram_pj_per_bit", "sram_pj_per_bit", "pj_per_mac",
}
_LINK_KEYS = {"gbps", "latency_ns", "pj_per_bit"}
_COST_KEYS = {"min_tokens", "op_overhead_ns", "scheduler_ns_per_expert"}
#: Limits of the cost knobs: token slots per FFN op, ns per op and per active expert.
MAX_MIN_TOKENS = 1 << 20
MAX_OVERHEAD_NS = 10**9


class _Fields:
    """Typed access to one TOML table, each error naming the offending field."""

    def __init__(self, table: Mapping[str, Any], path: str, prefix: str, known: set[str]) -> None:
        self.table, self.path, self.prefix = table, path, prefix
        for key in sorted(table):
            if key not in known:
                raise self.error(key, f"unknown field; expected one of {', '.join(sorted(known))}")

    def error(self, key: str, message: str) -> FsedpError:
        return FsedpError(message, path=self.path, field=f"{self.prefix}{key}")

    def number(self, key: str, *, minimum: float = 0.0, strict: bool = True, default: float | None = None) -> float:
        if key not in self.table:
            if default is not None:
                return default
            raise self.error(key, "missing required field")
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, got {value!r}")
        if not math.isfinite(value) or value > MAX_NUMBER:
            raise self.error(key, f"must be a finite number of at most {MAX_NUMBER:g}, got {value!r}")
        if value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise self.error(key, f"must be {bound}, got {value!r}")
        return float(value)

    def integer(self, key: str, *, minimum: int = 1, maximum: int = 1 << 31, default: int | None = None) -> int:
        if key not in self.table:
            if default is not None:
                return default
            raise self.error(key, "missing required field")
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise self.error(key, f"must be at most {maximum} (the limit), got {value}")
        return value

    def per_dtype(self, key: str, *, strict: bool) -> tuple[tuple[str, float], ...]:
        table = self.table.get(key)
        if not isinstance(table, dict):
            raise self.error(key, f"must be a table of dtype = number ({', '.join(DTYPES)})")
        sub = _Fields(table, self.path, f"{self.prefix}{key}.", set(DTYPES))
        values: dict[str, float] = {}
        for dtype in ("int8", "bf16"):
            values[dtype] = sub.number(dtype, strict=strict)
        for dtype, partner in _DTYPE_FALLBACK.items():
            values[dtype] = sub.number(dtype, strict=strict, default=values[partner])
        return tuple((d, values[d]) for d in DTYPES)


def parse_target_toml(text: str, path: str) -> Target:
    """Parse and validate a target TOML document; every error names the file and field."""
    doc = loads_toml(text, path)
    top = _Fields(doc, path, "", _TOP_KEYS)
    if "name" not in doc:  # a name is what reports, program.json and sweeps call the target by
        raise top.error("name", 'missing required field; give the target a name (name = "my-target")')
    name = doc["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise top.error("name", f"must be a non-empty string of at most 200 characters, got {name!r:.60}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise top.error("description", "must be a string")
    n = top.integer("chiplets", minimum=2, maximum=MAX_CHIPLETS)
    topology = doc.get("topology")
    if not isinstance(topology, str):
        raise top.error("topology", "missing or not a string; expected ring, mesh:RxC, torus:RxC, full or links")
    edges = _parse_edges(top, topology, n)
    if (problem := topology_problem(n, edges)) is not None:
        raise top.error("links" if topology == "links" else "topology", problem)
    dram_at = _parse_dram_at(top, topology, n)
    ring = _parse_ring(top, topology, n, edges)
    for section in ("chiplet", "link"):
        if not isinstance(doc.get(section), dict):
            raise top.error(section, f"missing [{section}] table")
    return Target(
        name=name,
        description=description,
        num_chiplets=n,
        topology=topology,
        edges=edges,
        dram_at=dram_at,
        ring=ring,
        chiplet=_parse_chiplet(_Fields(doc["chiplet"], path, "chiplet.", _CHIPLET_KEYS)),
        link=_parse_link(_Fields(doc["link"], path, "link.", _LINK_KEYS)),
        cost=_parse_cost(top, doc),
    )


def _int_list(top: _Fields, key: str) -> list[int]:
    value = top.table[key]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise top.error(key, f"must be a list of chiplet numbers, got {value!r}")
    return value


def _parse_edges(top: _Fields, topology: str, n: int) -> tuple[tuple[int, int], ...]:
    if topology == "links":
        raw = top.table.get("links")
        if not isinstance(raw, list) or not raw:
            raise top.error("links", "topology = \"links\" needs links = [[a, b], ...]")
        pairs: set[tuple[int, int]] = set()
        for item in raw:
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
                raise top.error("links", f"each link must be a pair [a, b] of chiplet numbers, got {item!r}")
            a, b = item
            pairs.add((min(a, b), max(a, b)))
        return tuple(sorted(pairs))
    if "links" in top.table:
        raise top.error("links", f"only allowed with topology = \"links\", not \"{topology}\"")
    grid = grid_shape(topology)
    if grid is not None:
        if grid[1] < 1 or grid[2] < 1 or grid[1] * grid[2] != n:
            raise top.error("topology", f"{topology} has {grid[1] * grid[2]} chiplets but chiplets = {n}")
    elif topology not in ("ring", "full"):
        raise top.error("topology", f"unknown topology '{topology}'; expected ring, mesh:RxC, torus:RxC, full or links")
    return topology_edges(topology, n)


def _parse_dram_at(top: _Fields, topology: str, n: int) -> tuple[int, ...]:
    value = top.table.get("dram_at", "all")
    if value == "all":
        return tuple(range(n))
    if value == "corners":
        if grid_shape(topology) is None:
            raise top.error("dram_at", "\"corners\" needs a mesh or torus topology")
        return corners(topology, n)
    if isinstance(value, str):
        raise top.error("dram_at", f"must be \"all\", \"corners\" or a list of chiplets, got '{value}'")
    chips = _int_list(top, "dram_at")
    if not chips:
        raise top.error("dram_at", "at least one chiplet must carry DRAM")
    if bad := [c for c in chips if not 0 <= c < n]:
        raise top.error("dram_at", f"chiplet {bad[0]} is outside 0..{n - 1}")
    if len(set(chips)) != len(chips):
        raise top.error("dram_at", "lists a chiplet twice")
    return tuple(sorted(chips))


def _parse_ring(top: _Fields, topology: str, n: int, edges: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    if "ring" in top.table:
        ring = tuple(_int_list(top, "ring"))
        if (problem := ring_problem(n, edges, ring)) is not None:
            raise top.error("ring", problem)
        return ring
    ring_found = virtual_ring(topology, n, edges)
    if ring_found is None:
        raise top.error(
            "topology",
            f"{topology} has no Hamiltonian cycle (the R1 virtual ring); add links or name one with ring = [...]",
        )
    return ring_found


def _parse_chiplet(f: _Fields) -> ChipletParams:
    if "tops" in f.table:
        if "macs_per_cycle" in f.table or "clock_ghz" in f.table:
            raise f.error("tops", "give either tops or clock_ghz with macs_per_cycle, not both")
        tops = f.per_dtype("tops", strict=True)
    else:
        if "macs_per_cycle" not in f.table:
            raise f.error("tops", "missing: give tops = {int8 = .., bf16 = ..} or clock_ghz with macs_per_cycle")
        clock = f.number("clock_ghz")
        # one MAC is two operations; GHz x MAC/cycle x 2 / 1000 = TOPS
        tops = tuple((d, 2.0 * macs * clock / 1000.0) for d, macs in f.per_dtype("macs_per_cycle", strict=True))
    return ChipletParams(
        tops=tops,
        sram_mib=f.number("sram_mib"),
        dram_channels=f.integer("dram_channels", maximum=MAX_DRAM_CHANNELS, default=1),
        dram_gbps_per_channel=f.number("dram_gbps_per_channel"),
        dram_latency_ns=f.number("dram_latency_ns", strict=False),
        dram_pj_per_bit=f.number("dram_pj_per_bit", strict=False),
        sram_pj_per_bit=f.number("sram_pj_per_bit", strict=False),
        pj_per_mac=f.per_dtype("pj_per_mac", strict=False),
    )


def _parse_cost(top: _Fields, doc: Mapping[str, Any]) -> CostParams:
    """The optional [cost] table (every key optional, defaults as `CostParams`)."""
    if "cost" not in doc:
        return CostParams()
    if not isinstance(doc["cost"], dict):
        raise top.error("cost", "must be a table: [cost] min_tokens = .., op_overhead_ns = ..")
    f, d = _Fields(doc["cost"], top.path, "cost.", _COST_KEYS), CostParams()
    return CostParams(
        min_tokens=f.integer("min_tokens", minimum=1, maximum=MAX_MIN_TOKENS, default=d.min_tokens),
        op_overhead_ns=f.integer("op_overhead_ns", minimum=0, maximum=MAX_OVERHEAD_NS, default=d.op_overhead_ns),
        scheduler_ns_per_expert=f.integer("scheduler_ns_per_expert", minimum=0, maximum=MAX_OVERHEAD_NS,
                                          default=d.scheduler_ns_per_expert),
    )


def _parse_link(f: _Fields) -> LinkParams:
    return LinkParams(
        gbps=f.number("gbps"),
        latency_ns=f.number("latency_ns", strict=False),
        pj_per_bit=f.number("pj_per_bit", strict=False),
    )
