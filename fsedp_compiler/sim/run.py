"""Run a compiled program: time every layer step on the machine model, collect metrics.

Layer steps run back to back: a block's dense part (attention etc.) on each chiplet's compute
engine, then (dynamic mode) the controller's scheduler latency, then the MoE step on the
engines (`streaming.execute`), ending at the SYNC barrier. Integer nanoseconds throughout.
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
    dram_bytes = d2d_bytes = 0
    link_bytes: dict[str, int] = defaultdict(int)
    sram_peak = [0] * n
    busy: list[dict[str, int]] = [defaultdict(int) for _ in range(n)]
    energy = {"dram": 0.0, "d2d": 0.0, "sram": 0.0, "compute": 0.0}
    result = SimResult({})
    start_wall = time.perf_counter()
    events = 0
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
                busy[c]["compute"] += d
                energy["compute"] += cost.mac_pj(dense.flops_per_token // 2 * tok)
                dense_ns = max(dense_ns, d)
        clock += dense_ns
        lower += dense_ns
        if block.graph is not None:
            graph = block.graph
            timeline = execute_graph(graph, n)
            lower += graph_lower_bound(graph)
            events += len(graph.tasks)
            for c in range(n):
                sram_peak[c] = max(sram_peak[c], timeline.peak_bytes[c])
            step_dram = step_d2d = step_macs = step_ffn_bytes = 0
            for i, t in enumerate(graph.tasks):
                s0, s1 = timeline.start[i], timeline.end[i]
                if t.kind == GRAPH_LOAD:
                    step_dram += t.nbytes
                    engine = f"dma{t.resource[2]}"
                elif t.kind in TRANSFERS:
                    step_d2d += t.nbytes
                    link_bytes[f"{t.chiplet}->{t.peer}"] += t.nbytes
                    engine = f"link->{t.peer}"
                else:
                    engine = "compute"
                    if t.kind == GRAPH_FFN:
                        step_macs += t.params * len(t.tokens)
                        step_ffn_bytes += t.params * loaded.specs[block.layer].dtype_bytes
                        result.ffn_log.append((block.layer, block.step, t.chiplet, t.expert, t.shard, t.tokens))
                    else:
                        step_macs += loaded.specs[block.layer].d_model * len(t.tokens)
                busy[t.chiplet][engine] += s1 - s0
                if keep_ops:
                    result.ops.append(TimedOp(t.kind, t.chiplet, engine, block.layer, block.step, t.expert, t.shard,
                                              clock + s0, clock + s1, t.peer))
            dram_bytes += step_dram
            d2d_bytes += step_d2d
            energy["dram"] += cost.dram_pj(step_dram)
            energy["d2d"] += cost.link_pj(step_d2d)
            energy["sram"] += cost.sram_pj(step_dram + 2 * step_d2d + step_ffn_bytes)
            energy["compute"] += cost.mac_pj(step_macs)
            clock += timeline.makespan
        elif block.trips is not None and block.schedule is not None:
            clock += block.scheduler_ns
            plan = loaded.plans[block.layer]
            tokens = {s.expert: s.tokens for s in block.schedule.streams}
            timeline = execute(block.trips, plan, loaded.ring, cost, tokens)
            lower += _lower_bound(block, loaded, cost)
            events += len(timeline.ops)
            for c in range(n):
                sram_peak[c] = max(sram_peak[c], timeline.peak_bytes[c])
                if sram_peak[c] > target.chiplet.sram_bytes:
                    raise FsedpError(f"chiplet {c} holds {sram_peak[c]} bytes of shards in layer {block.layer} step "
                                     f"{block.step}, more than its {target.chiplet.sram_bytes} bytes of SRAM",
                                     path=loaded.outdir)
            step_dram = step_d2d = step_macs = step_ffn_bytes = 0
            for op in timeline.ops:
                trip = block.trips[op.trip]
                dur = op.end - op.start
                if op.kind == LOAD:
                    step_dram += trip.nbytes
                    engine = f"dma{op.unit}"
                elif op.kind == SEND:
                    step_d2d += trip.nbytes
                    link_bytes[f"{op.chiplet}->{op.unit}"] += trip.nbytes
                    engine = f"link->{op.unit}"
                else:
                    step_macs += trip.params * tokens[trip.expert][op.chiplet]
                    step_ffn_bytes += trip.nbytes
                    engine = "compute"
                    result.ffn_log.append((block.layer, block.step, op.chiplet, trip.expert, trip.shard, None))
                busy[op.chiplet][engine] += dur
                if keep_ops:
                    result.ops.append(TimedOp(op.kind, op.chiplet, engine, block.layer, block.step, trip.expert,
                                              trip.shard, clock + op.start, clock + op.end,
                                              op.unit if op.kind == SEND else -1))
            # energy is linear in bytes and MACs: SRAM is written by every load and receive and read
            # by every send and FFN
            dram_bytes += step_dram
            d2d_bytes += step_d2d
            energy["dram"] += cost.dram_pj(step_dram)
            energy["d2d"] += cost.link_pj(step_d2d)
            energy["sram"] += cost.sram_pj(step_dram + 2 * step_d2d + step_ffn_bytes)
            energy["compute"] += cost.mac_pj(step_macs)
            clock += timeline.makespan
        per_layer[block.layer] += clock - begin
        if progress is not None:
            progress(index + 1, len(blocks))
    wall = time.perf_counter() - start_wall
    makespan = clock
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
        "dram_bytes": dram_bytes,
        "d2d_bytes": d2d_bytes,
        "d2d_link_bytes": dict(sorted(link_bytes.items())),
        "sram_peak_bytes": sram_peak,
        "sram_capacity_bytes": target.chiplet.sram_bytes,
        "sram_fits": max(sram_peak, default=0) <= target.chiplet.sram_bytes,
        "energy_pj": {k: round(v, 3) for k, v in energy.items()},
        "busy": [{k: round(v / makespan, 6) if makespan else 0.0 for k, v in sorted(b.items())} for b in busy],
        "sim_events": events,
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
