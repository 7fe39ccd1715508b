"""The hardware model: a chiplet system (topology, DRAM, D2D links, compute) and its presets.

Targets come from TOML files (`examples/targets/*.toml` are the named presets). Units: bandwidths
are GB/s (10^9 bytes/s) per DRAM channel and per link direction, even where a field says
`gbps` (DESIGN.md §4 fixes the names); latencies are ns; compute is TOPS (10^12 ops/s, one MAC
= 2 ops) at each dtype; energies are pJ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import FsedpError
from .tomlio import loads_toml
from .fileio import read_text

DTYPES: tuple[str, ...] = ("int8", "fp8", "bf16", "fp16")
#: A dtype missing from a per-dtype table takes the value of its same-width partner.
_DTYPE_FALLBACK: dict[str, str] = {"fp8": "int8", "fp16": "bf16"}


@dataclass(frozen=True)
class ChipletParams:
    """One chiplet's compute, SRAM, DRAM (used only where the chiplet carries DRAM) and energy."""

    tops: tuple[tuple[str, float], ...]
    sram_mib: float
    dram_channels: int
    dram_gbps_per_channel: float
    dram_latency_ns: float
    dram_pj_per_bit: float
    sram_pj_per_bit: float
    pj_per_mac: tuple[tuple[str, float], ...]

    def tops_at(self, dtype: str) -> float:
        return dict(self.tops)[dtype]

    def pj_per_mac_at(self, dtype: str) -> float:
        return dict(self.pj_per_mac)[dtype]

    @property
    def sram_bytes(self) -> int:
        return int(self.sram_mib * 1024 * 1024)


@dataclass(frozen=True)
class LinkParams:
    """One die-to-die link; `gbps` is GB/s in each direction (links are full duplex)."""

    gbps: float
    latency_ns: float
    pj_per_bit: float


@dataclass(frozen=True)
class Target:
    """A chiplet system: N chiplets, undirected D2D links, DRAM on `dram_at`, the R1 virtual ring."""

    name: str
    num_chiplets: int
    topology: str
    edges: tuple[tuple[int, int], ...]
    dram_at: tuple[int, ...]
    ring: tuple[int, ...]
    chiplet: ChipletParams
    link: LinkParams
    description: str = field(default="", compare=False)

    def graph(self):  # -> networkx.Graph (imported here: it costs ~0.5 s at start-up)
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.num_chiplets))
        g.add_edges_from(self.edges)
        return g

    @property
    def rings(self) -> tuple[tuple[int, ...], ...]:
        """The virtual rings: R1's ring, then edge-disjoint Hamiltonian cycles over the links it
        leaves (`rings.py`)."""
        from .rings import virtual_rings

        return virtual_rings(self.num_chiplets, self.edges, self.ring)

    @property
    def dram_channels_total(self) -> int:
        return len(self.dram_at) * self.chiplet.dram_channels

    @property
    def dram_gbps_total(self) -> float:
        return self.dram_channels_total * self.chiplet.dram_gbps_per_channel


# --- topologies ------------------------------------------------------------------------------

_GRID = re.compile(r"^(mesh|torus):(\d+)x(\d+)$")


def grid_shape(topology: str) -> tuple[str, int, int] | None:
    """`("mesh"|"torus", rows, cols)` for a grid topology string, else None."""
    m = _GRID.match(topology)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def topology_edges(topology: str, n: int) -> tuple[tuple[int, int], ...]:
    """Undirected links of a named topology over chiplets 0..n-1 (grids are row-major)."""
    edges: set[tuple[int, int]] = set()
    if topology == "ring":
        edges = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n) if n > 1}
    elif topology == "full":
        edges = {(i, j) for i in range(n) for j in range(i + 1, n)}
    elif (grid := grid_shape(topology)) is not None:
        kind, rows, cols = grid
        for r in range(rows):
            for c in range(cols):
                here = r * cols + c
                if c + 1 < cols or (kind == "torus" and cols > 2):
                    there = r * cols + (c + 1) % cols
                    edges.add((min(here, there), max(here, there)))
                if r + 1 < rows or (kind == "torus" and rows > 2):
                    there = ((r + 1) % rows) * cols + c
                    edges.add((min(here, there), max(here, there)))
    else:
        raise ValueError(topology)
    edges.discard((0, 0))
    return tuple(sorted(e for e in edges if e[0] != e[1]))


def corners(topology: str, n: int) -> tuple[int, ...]:
    """The corner chiplets of a grid (where the FSE-DP paper's system puts its DDR channels)."""
    grid = grid_shape(topology)
    if grid is None:
        raise ValueError(topology)
    _, rows, cols = grid
    return tuple(sorted({0, cols - 1, (rows - 1) * cols, rows * cols - 1}))


def boustrophedon_cycle(rows: int, cols: int) -> tuple[int, ...] | None:
    """A Hamiltonian cycle of a rows x cols mesh: along row 0, snake back over columns
    1.., return up column 0. Exists iff one side is even (and both > 1), or the mesh is 1x2."""
    if rows * cols <= 2:
        return tuple(range(rows * cols))
    if rows == 1 or cols == 1:
        return None
    if rows % 2:
        if cols % 2:
            return None
        transposed = boustrophedon_cycle(cols, rows)
        assert transposed is not None
        return tuple((v % rows) * cols + v // rows for v in transposed)
    cycle = [c for c in range(cols)]
    for r in range(1, rows):
        span = range(cols - 1, 0, -1) if r % 2 else range(1, cols)
        cycle += [r * cols + c for c in span]
    cycle += [r * cols for r in range(rows - 1, 0, -1)]
    return tuple(cycle)


def search_hamiltonian_cycle(n: int, edges: Iterable[tuple[int, int]], budget: int = 200_000) -> tuple[int, ...] | None:
    """Depth-first search for a Hamiltonian cycle starting at chiplet 0, fewest-options first.
    Gives up (None) after `budget` extensions; a target can always name its ring instead."""
    if n <= 2:
        return tuple(range(n))
    adj: dict[int, list[int]] = {v: [] for v in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    for v in adj:
        adj[v].sort()
    path, on_path, steps = [0], [False] * n, 0
    on_path[0] = True

    def extend() -> bool:
        nonlocal steps
        if len(path) == n:
            return 0 in adj[path[-1]]
        options = [w for w in adj[path[-1]] if not on_path[w]]
        options.sort(key=lambda w: sum(not on_path[x] for x in adj[w]))
        for w in options:
            steps += 1
            if steps > budget:
                return False
            path.append(w)
            on_path[w] = True
            if extend():
                return True
            path.pop()
            on_path[w] = False
        return False

    return tuple(path) if extend() else None


def virtual_ring(topology: str, n: int, edges: tuple[tuple[int, int], ...]) -> tuple[int, ...] | None:
    """The R1 virtual ring: ring and fully connected use index order, a torus the first of two
    edge-disjoint Hamiltonian cycles (so a second ring uses the other links), meshes a
    boustrophedon cycle, anything else a search. None when no Hamiltonian cycle is found."""
    if topology in ("ring", "full"):
        return tuple(range(n))
    grid = grid_shape(topology)
    if grid is not None and grid[0] == "torus":
        from .rings import decomposed_pair

        pair = decomposed_pair(n, edges)  # a ring whose unused links form a second one
        if pair is not None:
            return pair[0]
    if grid is not None and (cycle := boustrophedon_cycle(grid[1], grid[2])) is not None:
        return cycle
    return search_hamiltonian_cycle(n, edges)


def ring_problem(n: int, edges: Iterable[tuple[int, int]], ring: tuple[int, ...]) -> str | None:
    """Why `ring` is not a Hamiltonian cycle over the links, or None if it is."""
    if sorted(ring) != list(range(n)):
        return f"ring must visit each of the {n} chiplets exactly once, got {list(ring)}"
    links = {frozenset(e) for e in edges}
    for i, a in enumerate(ring):
        b = ring[(i + 1) % n]
        if n > 1 and a != b and frozenset((a, b)) not in links:
            return f"ring step {a} -> {b} is not a link of the topology"
    return None


def topology_problem(n: int, edges: Iterable[tuple[int, int]]) -> str | None:
    """Why the links do not form a valid connected topology over n chiplets, or None."""
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        if not (0 <= a < n and 0 <= b < n):
            return f"link ({a}, {b}) names a chiplet outside 0..{n - 1}"
        if a == b:
            return f"link ({a}, {b}) connects a chiplet to itself"
        nbrs[a].append(b)
        nbrs[b].append(a)
    component = [-1] * n  # connected components by breadth-first search
    for start in range(n):
        if component[start] >= 0:
            continue
        component[start] = start
        queue = [start]
        for a in queue:
            for b in nbrs[a]:
                if component[b] < 0:
                    component[b] = start
                    queue.append(b)
    if n > 1 and len(set(component)) > 1:
        parts = sorted(sorted(c for c in range(n) if component[c] == root) for root in set(component))
        return f"topology is not connected: components {parts}"
    return None


# --- presets and TOML ------------------------------------------------------------------------

PRESET_PACKAGE = "fsedp_compiler.presets"


def preset_names() -> list[str]:
    """Names of the bundled presets (`examples/targets/*.toml`)."""
    root = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Target:
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


MAX_CHIPLETS = 4096
MAX_DRAM_CHANNELS = 64
MAX_NUMBER = 1e12
"""Limits of a target (the machine's, as in program.json): chiplets, DRAM channels per chiplet, any number."""

_TOP_KEYS = {"name", "description", "chiplets", "topology", "links", "dram_at", "ring", "chiplet", "link"}
_CHIPLET_KEYS = {
    "tops", "clock_ghz", "macs_per_cycle", "sram_mib", "dram_channels", "dram_gbps_per_channel",
    "dram_latency_ns", "dram_pj_per_bit", "sram_pj_per_bit", "pj_per_mac",
}
_LINK_KEYS = {"gbps", "latency_ns", "pj_per_bit"}


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


def _parse_link(f: _Fields) -> LinkParams:
    return LinkParams(
        gbps=f.number("gbps"),
        latency_ns=f.number("latency_ns", strict=False),
        pj_per_bit=f.number("pj_per_bit", strict=False),
    )


def target_to_json(t: Target) -> dict[str, Any]:
    """Every parameter of a target as plain JSON data (program manifests carry it)."""
    c = t.chiplet
    return {
        "name": t.name, "description": t.description, "chiplets": t.num_chiplets, "topology": t.topology,
        "links": [list(e) for e in t.edges], "dram_at": list(t.dram_at), "ring": list(t.ring),
        "rings": [list(r) for r in t.rings],
        "chiplet": {"tops": dict(c.tops), "sram_mib": c.sram_mib, "dram_channels": c.dram_channels,
                    "dram_gbps_per_channel": c.dram_gbps_per_channel, "dram_latency_ns": c.dram_latency_ns,
                    "dram_pj_per_bit": c.dram_pj_per_bit, "sram_pj_per_bit": c.sram_pj_per_bit,
                    "pj_per_mac": dict(c.pj_per_mac)},
        "link": {"gbps": t.link.gbps, "latency_ns": t.link.latency_ns, "pj_per_bit": t.link.pj_per_bit},
    }


def target_from_json(data: dict[str, Any]) -> Target:
    """Inverse of `target_to_json`."""
    c, link = data["chiplet"], data["link"]
    return Target(
        name=data["name"], description=data.get("description", ""), num_chiplets=data["chiplets"],
        topology=data["topology"], edges=tuple((a, b) for a, b in data["links"]), dram_at=tuple(data["dram_at"]),
        ring=tuple(data["ring"]),
        chiplet=ChipletParams(
            tops=tuple((d, float(c["tops"][d])) for d in DTYPES), sram_mib=c["sram_mib"],
            dram_channels=c["dram_channels"], dram_gbps_per_channel=c["dram_gbps_per_channel"],
            dram_latency_ns=c["dram_latency_ns"], dram_pj_per_bit=c["dram_pj_per_bit"],
            sram_pj_per_bit=c["sram_pj_per_bit"], pj_per_mac=tuple((d, float(c["pj_per_mac"][d])) for d in DTYPES)),
        link=LinkParams(link["gbps"], link["latency_ns"], link["pj_per_bit"]),
    )
