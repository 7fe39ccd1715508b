"""Run a program directory on the machine: phase after phase, and collect its metrics.

All chiplets run a phase (the records between two SYNC barriers) from the same instant; the
phase ends when the last chiplet reaches the barrier. A dense phase runs each chiplet's DENSE on
its compute engine; a MoE phase runs on the engines (`stream_engine`, `task_engine`); a dynamic
MoE phase first pays the controller's scheduler latency. Only one layer step is in memory at a
time. Integer nanoseconds throughout.
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
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.isa import CURRENT, DENSE

from fsedp_compiler.sim.bounds import ring_bound
from fsedp_compiler.sim.firmware import decode_dynamic
from fsedp_compiler.sim.loader import Loaded, check_trace
from fsedp_compiler.sim.steps import ARG, LAYER, OP, STEP, Phase, Routing, _error, decode_stream, records, split_phases, tag_text
from fsedp_compiler.sim.stream_engine import StepRun, run_stream_step
from fsedp_compiler.sim.task_decode import decode_tasks
from fsedp_compiler.sim.task_engine import Residency, run_task_step
from fsedp_compiler.sim.trajectory import Trajectories


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


@dataclass
class _Totals:
    n: int
    dram_bytes: int = 0
    d2d_bytes: int = 0
    events: int = 0
    link_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    energy: dict[str, float] = field(default_factory=lambda: {"dram": 0.0, "d2d": 0.0, "sram": 0.0, "compute": 0.0})
    busy: list[dict[str, int]] = field(default_factory=list)
    sram_peak: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.busy = [defaultdict(int) for _ in range(self.n)]
        self.sram_peak = [0] * self.n

    def add(self, run: StepRun, cost: CostModel) -> None:
        """Energy is linear in bytes and MACs: SRAM is written by every load and receive and read
        by every send and FFN."""
        self.dram_bytes += run.dram_bytes
        self.d2d_bytes += run.d2d_bytes
        self.events += run.events
        for (a, b), v in run.link_bytes.items():
            self.link_bytes[f"{a}->{b}"] += v
        for (c, engine), v in run.busy.items():
            self.busy[c][engine] += v
        self.energy["dram"] += cost.dram_pj(run.dram_bytes)
        self.energy["d2d"] += cost.link_pj(run.d2d_bytes)
        self.energy["sram"] += cost.sram_pj(run.dram_bytes + 2 * run.d2d_bytes + run.ffn_bytes)
        self.energy["compute"] += cost.mac_pj(run.macs)
        self.sram_peak = [max(a, b) for a, b in zip(self.sram_peak, run.peak_bytes)]


def simulate(loaded: Loaded, trace: RoutingTrace | None = None, *, data=None, keep_ops: bool = False,
             progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Run the whole program; `data` (a `sim.data.DataPlane`) makes the run functional;
    `progress(done, total)` is called after every phase."""
    target = loaded.target
    n = target.num_chiplets
    if loaded.mode == "dynamic":
        if trace is None:
            raise FsedpError("a dynamic program needs a routing trace to run: --trace trace.npz", field="--trace")
        check_trace(loaded, trace, "--trace")
        repeats = trace.num_steps
    else:
        trace = loaded.trace
        assert trace is not None
        repeats = 1
    phases = split_phases(loaded)
    local = np.bincount(trace.token_chiplet, minlength=n).tolist()
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    trajs = [Trajectories(r) for r in loaded.rings]
    residency = Residency(n)
    totals = _Totals(n)
    result = SimResult({})
    per_layer: dict[int, int] = defaultdict(int)
    clock = lower = 0
    total = repeats * len(phases)
    done = 0
    started = time.perf_counter()
    for repeat in range(repeats):
        for phase in phases:
            step = repeat if loaded.mode == "dynamic" else phase.step
            if loaded.mode == "dynamic" and phase.step != CURRENT:
                raise _error(loaded, 0, phase.bounds[0][1] - 1, "a dynamic program's barriers are tagged s=*")
            begin = clock
            if phase.kind == "dense":
                ns = _dense(loaded, phase, step, local, totals, result if keep_ops else None, clock)
                clock += ns
                lower += ns
            elif phase.kind != "barrier":
                layer = loaded.layers.get(phase.layer)
                if layer is None or phase.layer not in positions:
                    raise _error(loaded, 0, phase.bounds[0][0], f"MoE work for layer {phase.layer}, which is not a "
                                                                "MoE layer of this program and its trace")
                experts, weights = trace.step(positions[phase.layer], step)
                routing = Routing.of(experts, weights, trace.token_chiplet, layer, n)
                cost = CostModel(target, layer.spec.dtype)
                if data is not None:
                    data.begin_step(layer, step, routing)
                if phase.kind == "task":
                    ts = decode_tasks(loaded, phase, routing, cost)
                    run = run_task_step(ts, residency, layer.spec.d_model, cost, loaded.error, data, keep_ops)
                else:
                    if phase.kind == "dynamic":
                        st, controller_ns = decode_dynamic(loaded, phase, routing, step, trajs)
                        clock += controller_ns
                    else:
                        st = decode_stream(loaded, phase, routing)
                    run = run_stream_step(st, cost, data, keep_ops)
                    run.bound = ring_bound(st, trajs if layer.policy.rings == "all" else trajs[:1],
                                           layer.policy.trajectory, cost)
                    for c, peak in enumerate(run.peak_bytes):
                        if peak > target.chiplet.sram_bytes:
                            raise FsedpError(f"chiplet {c} holds {peak} bytes of shards in layer {phase.layer} step "
                                             f"{step}, more than its {target.chiplet.sram_bytes} bytes of SRAM",
                                             path=loaded.outdir)
                if keep_ops:
                    _place_ops(result, run, phase.layer, step, clock)
                totals.add(run, cost)
                clock += run.makespan
                lower += run.bound
                if data is not None:
                    data.end_step()
            per_layer[phase.layer] += clock - begin
            done += 1
            if progress is not None:
                progress(done, total)
    wall = time.perf_counter() - started
    steps = trace.num_steps
    energy = dict(totals.energy)
    energy["total"] = sum(energy.values())
    makespan = clock
    result.metrics = {
        "strategy": loaded.strategy,
        "mode": loaded.mode,
        "model": loaded.manifest.model,
        "target": target.name,
        "tokens": trace.num_tokens,
        "steps": steps,
        "makespan_ns": makespan,
        "per_layer_ns": [per_layer[i] for i in sorted(per_layer)],
        "layers": sorted(per_layer),
        "lower_bound_ns": lower,
        "efficiency": lower / makespan if makespan else 1.0,
        "tokens_per_s": trace.num_tokens * steps / (makespan * 1e-9) if makespan else 0.0,
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
    if data is not None:
        result.metrics["functional"] = data.summary()
    return result


def _dense(loaded: Loaded, phase: Phase, step: int, local: list[int], totals: _Totals, result: SimResult | None,
           clock: int) -> int:
    """A dense phase: each chiplet's DENSE records on its compute engine; the phase's length."""
    spec = loaded.dense.get(phase.layer)
    layer = loaded.layers.get(phase.layer)
    cost = CostModel(loaded.target, layer.spec.dtype if layer else "bf16")
    longest = 0
    for c in range(loaded.target.num_chiplets):
        t = 0
        for i, r in enumerate(records(loaded, c, phase.bounds[c])):
            if r[OP] != DENSE:
                continue
            where = phase.bounds[c][0] + i
            if (r[LAYER], r[STEP]) != (phase.layer, phase.step):
                raise _error(loaded, c, where, f"dense tagged {tag_text(r[LAYER], r[STEP])} before the barrier of "
                                               f"l={phase.layer} s={phase.step}")
            if spec is None:
                raise _error(loaded, c, where, f"dense of block {phase.layer}, which has no dense part in this program")
            tokens = r[ARG] or (local[c] if loaded.mode == "dynamic" else 0)
            if tokens != local[c]:
                raise _error(loaded, c, where, f"dense on tokens={tokens}, but chiplet {c} holds {local[c]} tokens")
            d = cost.dense_ns(spec.flops_per_token, tokens)
            if result is not None and d:
                result.ops.append(TimedOp("dense", c, "compute", phase.layer, step, -1, -1, clock + t, clock + t + d))
            t += d
            totals.busy[c]["compute"] += d
            totals.energy["compute"] += cost.mac_pj(spec.flops_per_token // 2 * tokens)
        longest = max(longest, t)
    return longest


def _place_ops(result: SimResult, run: StepRun, layer: int, step: int, clock: int) -> None:
    for kind, c, unit, e, j, s, t in run.ops:
        if kind == "load":
            result.ops.append(TimedOp(kind, c, f"dma{unit}", layer, step, e, j, clock + s, clock + t))
        elif kind in ("send", "toksend", "reduce"):
            result.ops.append(TimedOp(kind, c, f"link->{unit}", layer, step, e, j, clock + s, clock + t, unit))
        else:
            result.ops.append(TimedOp(kind, c, "compute", layer, step, e, j, clock + s, clock + t))


def deterministic_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the wall-clock fields (for golden files and same-input comparisons)."""
    return {k: v for k, v in metrics.items() if k not in ("sim_wall_s",)}


def np_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(value)
