"""What every baseline lowering shares: a layer step's routing by expert and chiplet, shortest
paths on the topology, and a builder that adds loads, hop-by-hop transfers and FFNs to a graph.

Tiles: baselines stream weights in the same tiles as FSE-DP's shards (`ShardPlan`: M tiles per
expert along F), so every strategy reads the same bytes per tile and their buffers compare.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fsedp_compiler.baselines.taskgraph import ACC, FFN, JOIN, LOAD, Task, TaskGraph, transfer_cost
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target


ACTIVATION_BYTES = 2
PARTIAL_BYTES = 4


@dataclass(frozen=True)
class Options:
    """Strategy knobs that are not in the shard plan."""

    hydra_skip_single: bool = False
    """Hydra as the authors' code runs it: experts with a single token are never computed (inexact)."""
    moe_layers: int = 1
    """MoE layers in the program: ep-cache's caches of all of them share one SRAM."""


@dataclass(frozen=True)
class Topology:
    """Deterministic shortest paths (BFS, neighbours by id) and nearest DRAM chiplets."""

    target: Target

    @cached_property
    def neighbours(self) -> list[list[int]]:
        nbrs: list[set[int]] = [set() for _ in range(self.target.num_chiplets)]
        for a, b in self.target.edges:
            nbrs[a].add(b)
            nbrs[b].add(a)
        return [sorted(s) for s in nbrs]

    @cached_property
    def _parents(self) -> list[list[int]]:
        out = []
        for src in range(self.target.num_chiplets):
            parent = [-1] * self.target.num_chiplets
            parent[src] = src
            queue = deque([src])
            while queue:
                a = queue.popleft()
                for b in self.neighbours[a]:
                    if parent[b] < 0:
                        parent[b] = a
                        queue.append(b)
            out.append(parent)
        return out

    def path(self, src: int, dst: int) -> list[int]:
        """Chiplets from src to dst along a shortest path (both ends included)."""
        parent = self._parents[src]
        out = [dst]
        while out[-1] != src:
            out.append(parent[out[-1]])
        return out[::-1]

    def dist(self, src: int, dst: int) -> int:
        return len(self.path(src, dst)) - 1

    def nearest_dram(self, chiplet: int) -> int:
        """The DRAM chiplet closest to `chiplet` (ties: lowest id)."""
        return min(self.target.dram_at, key=lambda d: (self.dist(d, chiplet), d))

    @cached_property
    def slice_stores(self) -> list[int]:
        """Where each chiplet's slice of the weights is stored (TP): its own DRAM, else the
        nearest DRAM chiplet, ties going to the one storing the fewest slices so far, so that the
        reads spread over the DRAM chiplets (lowest id first only among equals)."""
        dram = self.target.dram_at
        load = {d: 1 for d in dram}
        out = []
        for c in range(self.target.num_chiplets):
            if c in load:
                out.append(c)
                continue
            near = min(self.dist(d, c) for d in dram)
            store = min((d for d in dram if self.dist(d, c) == near), key=lambda d: (load[d], d))
            load[store] += 1
            out.append(store)
        return out


@dataclass
class StepRoute:
    """One layer step's routing: per active expert (shared experts included), its token ids
    per chiplet, in expert id order; and every chiplet's whole token set."""

    tokens: dict[int, dict[int, tuple[int, ...]]]
    local: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """chiplet -> all its tokens, by id (chiplets holding tokens only, in chiplet order)"""

    @staticmethod
    def build(experts: np.ndarray, token_chiplet: np.ndarray, plan: ShardPlan) -> StepRoute:
        out: dict[int, dict[int, list[int]]] = {}
        for t, row in enumerate(experts.tolist()):
            c = int(token_chiplet[t])
            for e in dict.fromkeys(row):
                out.setdefault(int(e), {}).setdefault(c, []).append(t)
        for s in range(plan.layer.num_shared):
            e = plan.layer.num_experts + s
            for t, c in enumerate(token_chiplet.tolist()):
                out.setdefault(e, {}).setdefault(int(c), []).append(t)
        local: dict[int, list[int]] = {}
        for t, c in enumerate(token_chiplet.tolist()):
            local.setdefault(int(c), []).append(t)
        return StepRoute({e: {c: tuple(v) for c, v in sorted(out[e].items())} for e in sorted(out)},
                         {c: tuple(v) for c, v in sorted(local.items())})

    def experts_of(self) -> dict[int, list[int]]:
        """token -> the active experts it is routed to (shared ones included), in expert order."""
        out: dict[int, list[int]] = {}
        for e, groups in self.tokens.items():
            for toks in groups.values():
                for t in toks:
                    out.setdefault(t, []).append(e)
        return out

    def count(self, expert: int) -> int:
        return sum(len(v) for v in self.tokens[expert].values())

    def all_tokens(self, expert: int) -> tuple[int, ...]:
        return tuple(sorted(t for v in self.tokens[expert].values() for t in v))


def paired_order(route: StepRoute) -> list[int]:
    """Heavy/light pairing (the FSE-DP and Hydra order): heaviest, lightest, 2nd heaviest, ..."""
    by_load = sorted(route.tokens, key=lambda e: (-route.count(e), e))
    out: list[int] = []
    lo, hi = 0, len(by_load) - 1
    while lo <= hi:
        out.append(by_load[lo])
        if lo != hi:
            out.append(by_load[hi])
        lo, hi = lo + 1, hi - 1
    return out


class Builder:
    """Adds tasks for one layer step; durations come from the cost model. `where[0][e, j]`,
    `where[1][e, j]` are the chiplet and channel the strategy's placement puts tile j of e on."""

    def __init__(self, graph: TaskGraph, spec: MoeLayerSpec, plan: ShardPlan, target: Target, topo: Topology,
                 where: tuple[np.ndarray, np.ndarray]):
        self.graph, self.spec, self.plan, self.target, self.topo = graph, spec, plan, target, topo
        self.where = where
        self.cost = CostModel(target, spec.dtype)
        # activations travel at 16 bits at least (int8/fp8 weights still have bf16 activations);
        # partial sums that are still to be reduced travel at fp32, the accumulators' precision
        self.token_bytes = spec.d_model * max(spec.dtype_bytes, ACTIVATION_BYTES)
        self.partial_bytes = spec.d_model * PARTIAL_BYTES

    def load(self, chiplet: int, channel: int, expert: int, tile: int, deps: tuple[int, ...] = ()) -> int:
        """Read one weight tile from DRAM channel `channel` of `chiplet` into a buffer there."""
        assert (int(self.where[0][expert, tile]), int(self.where[1][expert, tile])) == (chiplet, channel), \
            "a strategy loads each tile from where its placement puts it (the program's DRAM image)"
        nbytes = self.plan.shard_bytes(expert)
        busy, lat = transfer_cost(self.cost, LOAD, nbytes)
        return self.graph.add(Task(LOAD, chiplet, ("dma", chiplet, channel), busy, lat, deps, expert, tile,
                                   nbytes, params=self.plan.shard_params(expert), holds=nbytes, holder=chiplet))

    def move(self, kind: str, path: list[int], expert: int, shard: int, nbytes: int, dep: int | None,
             extra: tuple[int, ...] = (), first_extra: tuple[int, ...] = (), *, row: int = 0, rows: int = 0,
             first_kind: str | None = None) -> int | None:
        """Send data hop by hop along `path` (store and forward; each hop holds it at the
        receiver). Returns the last hop's task, or `dep` when the path is a single chiplet.
        `first_extra` are extra dependencies of the first hop (e.g. a buffer being free);
        `first_kind` the first hop's kind when it differs (REDUCE: partial outputs leave the
        chiplet that summed them, later hops forward them as TOKSEND); `row`, `rows` the token
        rows of the group that travel."""
        last = dep
        busy, lat = transfer_cost(self.cost, kind, nbytes)
        for hop, (a, b) in enumerate(zip(path, path[1:])):
            deps = ((last,) if last is not None else ()) + extra + (first_extra if hop == 0 else ())
            this = first_kind if hop == 0 and first_kind else kind
            last = self.graph.add(Task(this, a, ("link", a, b), busy, lat, deps, expert, shard, nbytes, peer=b,
                                       holds=nbytes, holder=b, row=row, rows=rows))
        return last

    def ffn(self, chiplet: int, expert: int, tile: int, tokens: tuple[int, ...], deps: tuple[int, ...],
            sets: bool = False) -> int:
        """Apply tile `tile` of `expert` to `tokens` on `chiplet`; `sets`: the remote ones come from
        all-gathered whole token sets (`collectives`), not from groups of the expert."""
        params = self.plan.shard_params(expert)
        busy = self.cost.ffn_ns(params, len(tokens))
        return self.graph.add(Task(FFN, chiplet, ("compute", chiplet, 0), busy, 0, deps, expert, tile,
                                   tokens=tokens, params=params, sets=sets))

    def join(self, chiplet: int, expert: int, deps: tuple[int, ...]) -> int:
        """One task standing for all of `deps` (usable when they all are, holding them until its
        own dependents finish): tasks that each need all of them wait on it instead."""
        return self.graph.add(Task(JOIN, chiplet, ("control", chiplet, 0), 0, 0, deps, expert, 0))

    def acc(self, chiplet: int, expert: int, group: int, tokens: tuple[int, ...], deps: tuple[int, ...],
            row: int = 0) -> int:
        """Add received partial outputs (d_model values per token) into local accumulators."""
        busy = self.cost.dense_ns(self.spec.d_model, len(tokens))
        return self.graph.add(Task(ACC, chiplet, ("compute", chiplet, 0), busy, 0, deps, expert, group,
                                   tokens=tokens, row=row, rows=len(tokens)))
