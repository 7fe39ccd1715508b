"""Run a compiled program: time every layer step on the machine model, collect metrics.

Layer steps run back to back: a block's dense part (attention etc.) on each chiplet's compute
engine, then (dynamic mode) the controller's scheduler latency, then the MoE step on the
engines (FSE-DP: `streaming.execute`; baselines: their task graph, `taskgraph.execute`), ending
at the SYNC barrier. Integer nanoseconds throughout.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.routing import RoutingTrace
from fsedp_compiler.streaming import LOAD, SEND, execute
from fsedp_compiler.taskgraph import FFN as GRAPH_FFN
from fsedp_compiler.taskgraph import LOAD as GRAPH_LOAD
from fsedp_compiler.taskgraph import TRANSFERS
from fsedp_compiler.taskgraph import execute as execute_graph
from fsedp_compiler.taskgraph import lower_bound as graph_lower_bound

from .loader import Loaded
from .program import BlockStep, dynamic_blocks, static_blocks


@dataclass
class TimedOp:
    """An op placed on the global timeline (ns)."""

    kind: str
    chiplet: int
    engine: str
    layer: int
    step: int
    expert: int
    shard: int
    start: int
    end: int
    peer: int = -1


@dataclass
class SimResult:
    metrics: dict[str, Any]
    ops: list[TimedOp] = field(default_factory=list)
    ffn_log: list[tuple[int, int, int, int, int, tuple[int, ...] | None]] = field(default_factory=list)
    """(layer, step, chiplet, expert, shard, tokens) of every FFN, in execution order (functional
    mode); tokens None = the chiplet's own tokens routed to the expert (FSE-DP)."""


def _lower_bound(block: BlockStep, loaded: Loaded, cost: CostModel) -> int:
    """DESIGN.md §5: busiest DRAM channel, busiest compute engine, D2D cut into any chiplet."""
    assert block.trips is not None and block.schedule is not None
    target = loaded.target
    dram: dict[tuple[int, int], int] = defaultdict(int)
    compute = [0] * target.num_chiplets
    inbound = [0] * target.num_chiplets
    tokens = {s.expert: s.tokens for s in block.schedule.streams}
    for t in block.trips:
        dram[(t.path[0], t.channel)] += cost.dram_busy_ns(t.nbytes)
        for c, k in zip(t.path, t.computes):
            if k:
                compute[c] += cost.ffn_ns(t.params, tokens[t.expert][c])
                if c != t.path[0]:
                    inbound[c] += t.nbytes
    degree = [0] * target.num_chiplets
    for a, b in target.edges:
        degree[a] += 1
        degree[b] += 1
    cut = max((cost.link_busy_ns(-(-b // max(degree[c], 1))) for c, b in enumerate(inbound)), default=0)
    return max(max(dram.values(), default=0) + (cost.dram_latency_ns if dram else 0), max(compute), cut)


@dataclass
class Totals:
    """What a run accumulates over its steps (bytes, busy time per engine, energy, SRAM peaks)."""

    num_chiplets: int
    dram_bytes: int = 0
    d2d_bytes: int = 0
    link_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    energy: dict[str, float] = field(default_factory=lambda: {"dram": 0.0, "d2d": 0.0, "sram": 0.0, "compute": 0.0})
    busy: list[dict[str, int]] = field(default_factory=list)
    sram_peak: list[int] = field(default_factory=list)
    events: int = 0

    def __post_init__(self) -> None:
        self.busy = [defaultdict(int) for _ in range(self.num_chiplets)]
        self.sram_peak = [0] * self.num_chiplets

    def add_step(self, cost: CostModel, dram: int, d2d: int, macs: int, ffn_bytes: int, peaks: list[int]) -> None:
        """Energy is linear in bytes and MACs: SRAM is written by every load and receive and read
        by every send and FFN."""
        self.dram_bytes += dram
        self.d2d_bytes += d2d
        self.energy["dram"] += cost.dram_pj(dram)
        self.energy["d2d"] += cost.link_pj(d2d)
        self.energy["sram"] += cost.sram_pj(dram + 2 * d2d + ffn_bytes)
        self.energy["compute"] += cost.mac_pj(macs)
        self.sram_peak = [max(a, b) for a, b in zip(self.sram_peak, peaks)]


def _graph_step(block: BlockStep, loaded: Loaded, cost: CostModel, totals: Totals, result: SimResult, clock: int,
                keep_ops: bool) -> tuple[int, int]:
    """A baseline step (task graph): (makespan, lower bound)."""
    graph = block.graph
    assert graph is not None
    timeline = execute_graph(graph, totals.num_chiplets)
    totals.events += len(graph.tasks)
    spec = loaded.specs[block.layer]
    dram = d2d = macs = ffn_bytes = 0
    for i, t in enumerate(graph.tasks):
        s0, s1 = timeline.start[i], timeline.end[i]
        if t.kind == GRAPH_LOAD:
            dram += t.nbytes
            engine = f"dma{t.resource[2]}"
        elif t.kind in TRANSFERS:
            d2d += t.nbytes
            totals.link_bytes[f"{t.chiplet}->{t.peer}"] += t.nbytes
            engine = f"link->{t.peer}"
        elif t.kind == GRAPH_FFN:
            engine = "compute"
            macs += t.params * len(t.tokens)
            ffn_bytes += t.params * spec.dtype_bytes
            result.ffn_log.append((block.layer, block.step, t.chiplet, t.expert, t.shard, t.tokens))
        else:  # ACC: one add per output element
            engine = "compute"
            macs += spec.d_model * len(t.tokens)
        totals.busy[t.chiplet][engine] += s1 - s0
        if keep_ops:
            result.ops.append(TimedOp(t.kind, t.chiplet, engine, block.layer, block.step, t.expert, t.shard,
                                      clock + s0, clock + s1, t.peer))
    totals.add_step(cost, dram, d2d, macs, ffn_bytes, timeline.peak_bytes)
    return timeline.makespan, graph_lower_bound(graph)


def _trip_step(block: BlockStep, loaded: Loaded, cost: CostModel, totals: Totals, result: SimResult, clock: int,
               keep_ops: bool) -> tuple[int, int]:
    """An FSE-DP step (shard trips on the engine model): (makespan, lower bound)."""
    assert block.trips is not None and block.schedule is not None
    target = loaded.target
    tokens = {s.expert: s.tokens for s in block.schedule.streams}
    timeline = execute(block.trips, loaded.plans[block.layer], loaded.ring, cost, tokens)
    totals.events += len(timeline.ops)
    for c, peak in enumerate(timeline.peak_bytes):
        if peak > target.chiplet.sram_bytes:  # the shard plan guarantees it fits: an inconsistent program
            raise FsedpError(f"chiplet {c} holds {peak} bytes of shards in layer {block.layer} step "
                             f"{block.step}, more than its {target.chiplet.sram_bytes} bytes of SRAM",
                             path=loaded.outdir)
    dram = d2d = macs = ffn_bytes = 0
    for op in timeline.ops:
        trip = block.trips[op.trip]
        if op.kind == LOAD:
            dram += trip.nbytes
            engine = f"dma{op.unit}"
        elif op.kind == SEND:
            d2d += trip.nbytes
            totals.link_bytes[f"{op.chiplet}->{op.unit}"] += trip.nbytes
            engine = f"link->{op.unit}"
        else:
            macs += trip.params * tokens[trip.expert][op.chiplet]
            ffn_bytes += trip.nbytes
            engine = "compute"
            result.ffn_log.append((block.layer, block.step, op.chiplet, trip.expert, trip.shard, None))
        totals.busy[op.chiplet][engine] += op.end - op.start
        if keep_ops:
            result.ops.append(TimedOp(op.kind, op.chiplet, engine, block.layer, block.step, trip.expert,
                                      trip.shard, clock + op.start, clock + op.end,
                                      op.unit if op.kind == SEND else -1))
    totals.add_step(cost, dram, d2d, macs, ffn_bytes, timeline.peak_bytes)
    return timeline.makespan, _lower_bound(block, loaded, cost)


def simulate(loaded: Loaded, trace: RoutingTrace | None, *, keep_ops: bool = True,
             progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Simulate the whole program; `progress(done, total)` is called after every block."""
    target = loaded.target
    n = target.num_chiplets
    if loaded.mode == "dynamic":
        if trace is None:
            raise FsedpError("a dynamic program needs a routing trace to run: --trace trace.npz", field="--trace")
        blocks = list(dynamic_blocks(loaded, trace))
        tokens_total, steps = trace.num_tokens, trace.num_steps
    else:
        blocks = list(static_blocks(loaded))
        tokens_total, steps = int(loaded.manifest["tokens"]), int(loaded.manifest["steps"])
    clock = 0
    lower = 0
    per_layer: dict[int, int] = defaultdict(int)
    totals = Totals(n)
    result = SimResult({})
    start_wall = time.perf_counter()
    for index, block in enumerate(blocks):
        begin = clock
        dense = loaded.dense.get(block.layer)
        dtype = loaded.specs[block.layer].dtype if block.layer in loaded.specs else "bf16"
        cost = CostModel(target, dtype)
        dense_ns = 0
        if dense is not None:
            for c, tok in enumerate(block.dense_tokens):
                d = cost.dense_ns(dense.flops_per_token, tok)
                if d and keep_ops:
                    result.ops.append(TimedOp("dense", c, "compute", block.layer, block.step, -1, -1, clock, clock + d))
                totals.busy[c]["compute"] += d
                totals.energy["compute"] += cost.mac_pj(dense.flops_per_token // 2 * tok)
                dense_ns = max(dense_ns, d)
        clock += dense_ns
        lower += dense_ns
        if block.graph is not None or block.trips is not None:
            clock += block.scheduler_ns
            step = _graph_step if block.graph is not None else _trip_step
            makespan, bound = step(block, loaded, cost, totals, result, clock, keep_ops)
            clock += makespan
            lower += bound
        per_layer[block.layer] += clock - begin
        if progress is not None:
            progress(index + 1, len(blocks))
    wall = time.perf_counter() - start_wall
    makespan = clock
    energy = dict(totals.energy)
    energy["total"] = sum(energy.values())
    result.metrics = {
        "strategy": loaded.manifest.get("strategy", "fsedp"),
        "mode": loaded.mode,
        "model": loaded.manifest["model"],
        "target": target.name,
        "tokens": tokens_total,
        "steps": steps,
        "makespan_ns": makespan,
        "per_layer_ns": [per_layer[i] for i in sorted(per_layer)],
        "layers": sorted(per_layer),
        "lower_bound_ns": lower,
        "efficiency": lower / makespan if makespan else 1.0,
        "tokens_per_s": tokens_total * steps / (makespan * 1e-9) if makespan else 0.0,
        "dram_bytes": totals.dram_bytes,
        "d2d_bytes": totals.d2d_bytes,
        "d2d_link_bytes": dict(sorted(totals.link_bytes.items())),
        "sram_peak_bytes": totals.sram_peak,
        "sram_capacity_bytes": target.chiplet.sram_bytes,
        "sram_fits": max(totals.sram_peak, default=0) <= target.chiplet.sram_bytes,
        "energy_pj": {k: round(v, 3) for k, v in energy.items()},
        "busy": [{k: round(v / makespan, 6) if makespan else 0.0 for k, v in sorted(b.items())} for b in totals.busy],
        "sim_events": totals.events,
        "sim_wall_s": round(wall, 3),
    }
    return result


def deterministic_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the wall-clock fields (for golden files and same-input comparisons)."""
    return {k: v for k, v in metrics.items() if k not in ("sim_wall_s",)}


def np_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(value)
