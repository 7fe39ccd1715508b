"""The hardware model: a chiplet system (topology, DRAM, D2D links, compute) as values.

Units: bandwidths are GB/s (10^9 bytes/s) per DRAM channel and per link direction, even where a
field says `gbps` (DESIGN.md §4 fixes the names); latencies are ns; compute is TOPS (10^12 ops/s,
one MAC = 2 ops) at each dtype; energies are pJ. Targets are read from TOML files and presets by
`target_files.py`; topologies and rings are built by `topology.py` and `rings.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
class CostParams:
    """The cost model's utilisation knobs (`costmodel.py`): an FFN op is charged at least
    `min_tokens` token slots plus `op_overhead_ns`; the dynamic controller's scheduler costs
    `scheduler_ns_per_expert` per active expert. The defaults are the optimistic 1, 0 and 2."""

    min_tokens: int = 1
    op_overhead_ns: int = 0
    scheduler_ns_per_expert: int = 2


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
    cost: CostParams = field(default_factory=CostParams)

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
        from fsedp_compiler.inputs.rings import virtual_rings

        return virtual_rings(self.num_chiplets, self.edges, self.ring)

    @property
    def dram_channels_total(self) -> int:
        return len(self.dram_at) * self.chiplet.dram_channels

    @property
    def dram_gbps_total(self) -> float:
        return self.dram_channels_total * self.chiplet.dram_gbps_per_channel


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
        # written only when set, so programs of targets that leave the defaults keep their bytes
        **({"cost": dataclasses.asdict(t.cost)} if t.cost != CostParams() else {}),
    }
