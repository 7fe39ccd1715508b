"""The compiler's step estimator: how long a compiled module takes on its target, per block step.

It times the compiler's own view of each step (FSE-DP: the schedule's shard trips on
`streaming.execute`; baselines: the strategy's task graph on `taskgraph.execute`) with the same
cost model, and adds each block's dense part and, in dynamic mode, the controller's latency.
It is the second implementation the machine (`fsedp_compiler.sim`, which executes the emitted
instructions) is held equal to; `compile` prints it, `bench`, `--strategy auto` (`auto.py`) and the
cross-check use it. Per MoE layer it also reports the most SRAM a chiplet holds and how busy the
busiest DRAM channel, link and compute engine are, which `auto` needs to pick plans that fit and
to name what binds them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.baselines.taskgraph import execute as execute_graph
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, StepSchedule, schedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import FFN, LOAD, Trip, execute, trajectories
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import LayerContext, layer_contexts, module_routing
from fsedp_compiler.ir.modules import require_target, spec_from_module

#: Resource kinds, as `bench` names them (DRAM channels, directed links, compute engines).
KINDS = ("dram", "link", "compute")


@dataclass
class Estimate:
    """Estimated makespan (ns) and each (block, step)'s share, in run order."""

    makespan: int = 0
    steps: list[tuple[int, int, int]] = field(default_factory=list)
    """(block, step, ns) of every block step"""


@dataclass
class LayerEstimate:
    """One MoE layer under one plan: each step's time (ns), the most bytes each chiplet holds in
    any step, and per resource kind the busiest single unit's busy time over all steps (ns)."""

    steps_ns: list[int]
    peak_bytes: list[int]
    busy_ns: dict[str, int]

    @property
    def total_ns(self) -> int:
        return sum(self.steps_ns)

    def fits(self, capacity: int) -> bool:
        """Whether every chiplet's peak is within `capacity` bytes of SRAM."""
        return max(self.peak_bytes, default=0) <= capacity

    def busy_fraction(self) -> dict[str, float]:
        """Per kind, the busiest unit's busy time over the layer's time (as `bench.max_busy`)."""
        total = self.total_ns
        return {k: round(self.busy_ns.get(k, 0) / total, 6) if total else 0.0 for k in KINDS}


class _Accumulator:
    """Sums a layer's steps: times, per-chiplet peaks, busy time per resource unit."""

    def __init__(self, n: int) -> None:
        self.steps: list[int] = []
        self.peak = [0] * n
        self.busy: dict[tuple, int] = defaultdict(int)

    def add(self, ns: int, peak: Iterable[int], busy: Iterable[tuple[tuple, int]]) -> None:
        self.steps.append(ns)
        self.peak = [max(a, b) for a, b in zip(self.peak, peak)]
        for unit, t in busy:
            self.busy[unit] += t

    def result(self) -> LayerEstimate:
        best: dict[str, int] = {}
        for unit, t in self.busy.items():
            best[unit[0]] = max(best.get(unit[0], 0), t)
        return LayerEstimate(self.steps, self.peak, best)


def fsedp_layer(scheds: Iterable[StepSchedule], plan: ShardPlan, rings: Sequence[Ring], cost: CostModel,
                trajectory: str, controller: bool = False, trips: Sequence[list[Trip]] | None = None,
                memo: dict | None = None) -> LayerEstimate:
    """An FSE-DP layer's steps (its schedules) on the engines; `rings`: the layer's virtual rings
    (R1's first); `controller`: dynamic mode, each step also pays the controller's scheduler latency;
    `trips`: each step's `trajectories` when the caller has them already (auto's bounds); `memo`:
    each executed step by its trips and local tokens, shared by calls on the same layer, plan, rings
    and cost (auto: FSE-DP's ablations often make the very same trips, e.g. `onering` on a target
    with one ring, and `execute` is a function of them)."""
    ring = rings[0]
    acc = _Accumulator(ring.size)
    for i, sched in enumerate(scheds):
        trips_i = trajectories(sched, plan, rings, trajectory) if trips is None else trips[i]
        tokens = {st.expert: st.tokens for st in sched.streams}
        key = (tuple(trips_i), tuple(tokens.items())) if memo is not None else None
        step = memo.get(key) if memo is not None else None
        if step is None:
            run = execute(trips_i, plan, ring, cost, tokens)
            busy: dict[tuple, int] = defaultdict(int)
            for op in run.ops:
                busy[("dram", op.chiplet, op.unit) if op.kind == LOAD else ("compute", op.chiplet) if op.kind == FFN
                     else ("link", op.chiplet, op.unit)] += op.end - op.start
            step = (run.makespan, run.peak_bytes, dict(busy))
            if memo is not None:
                memo[key] = step
        extra = cost.scheduler_ns(len(sched.streams)) if controller else 0
        acc.add(step[0] + extra, step[1], step[2].items())
    return acc.result()


def fsedp_schedules(spec: MoeLayerSpec, plan: ShardPlan, rings: Sequence[Ring], cost: CostModel, policy: Policy,
                    trace: RoutingTrace, layer_pos: int) -> list[StepSchedule]:
    """The scheduler's plan of every step of the trace (what schedule-streams and the controller run)."""
    return [schedule(StepRouting(*trace.step(layer_pos, s), trace.token_chiplet, spec.index, s), plan, rings, cost,
                     policy) for s in range(trace.num_steps)]


def baseline_layer(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, trace: RoutingTrace,
                   layer_pos: int, hydra_skip_single: bool = False, moe_layers: int = 1) -> LayerEstimate:
    """A baseline layer's task graphs, one per step, list-scheduled (made one at a time)."""
    from fsedp_compiler.baselines import Options, layer_graphs

    kind = {"dma": "dram", "link": "link", "compute": "compute"}
    acc = _Accumulator(target.num_chiplets)
    for graph in layer_graphs(strategy, spec, plan, target, Ring(target.ring), trace, layer_pos,
                              Options(hydra_skip_single, moe_layers)):
        run = execute_graph(graph, target.num_chiplets)
        acc.add(run.makespan, run.peak_bytes,  # FREEs of cached tiles run on a "control" resource: not an engine
                (((kind[t.resource[0]], *t.resource[1:]), t.busy) for t in graph.tasks if t.resource[0] in kind))
    return acc.result()


def context_layer(ctx: LayerContext, target: Target, trace: RoutingTrace, layer_pos: int,
                  moe_layers: int) -> LayerEstimate:
    """One layer of a lowered module as its ops describe it (static schedule, dynamic, or baseline)."""
    cost = CostModel(target, ctx.spec.dtype)
    if ctx.baseline_op is not None:
        return baseline_layer(ctx.baseline_op.prop_str("strategy"), ctx.spec, ctx.plan, target, trace, layer_pos,
                              bool(ctx.baseline_op.prop_int("skip_single")), moe_layers)
    if isinstance(ctx.schedule_op, StaticScheduleOp):
        from fsedp_compiler.ir.static_schedule import static_steps

        return fsedp_layer(static_steps(ctx, target), ctx.plan, ctx.rings, cost, ctx.policy.trajectory)
    scheds = fsedp_schedules(ctx.spec, ctx.plan, ctx.rings, cost, ctx.policy, trace, layer_pos)
    return fsedp_layer(scheds, ctx.plan, ctx.rings, cost, ctx.policy.trajectory, controller=True)


def module_trace(module: ModuleOp, trace: RoutingTrace | None = None) -> RoutingTrace:
    """The routing to estimate a lowered module on (static: its own; dynamic: `trace`)."""
    contexts = layer_contexts(module)
    static = any(isinstance(c.schedule_op, StaticScheduleOp) or c.baseline_op is not None for c in contexts)
    if static:
        trace = module_routing(module)
    if trace is None:
        raise ValueError("a dynamic module needs a routing trace to estimate")
    return trace


def estimate_layers(module: ModuleOp, trace: RoutingTrace | None = None) -> dict[int, LayerEstimate]:
    """Every MoE layer of a lowered module, by block index (static: its own trace; dynamic: `trace`)."""
    target = require_target(module, "estimate")
    trace = module_trace(module, trace)
    contexts = layer_contexts(module)
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    return {c.spec.index: context_layer(c, target, trace, positions[c.spec.index], len(contexts)) for c in contexts}


def estimate_module(module: ModuleOp, trace: RoutingTrace | None = None) -> Estimate:
    """Estimate a module after its lowering (static: its own trace; dynamic: `trace`)."""
    target = require_target(module, "estimate")
    model = spec_from_module(module)
    trace = module_trace(module, trace)
    contexts = {c.spec.index: c for c in layer_contexts(module)}
    per_step = {index: est.steps_ns for index, est in estimate_layers(module, trace).items()}
    local = np.bincount(trace.token_chiplet, minlength=target.num_chiplets).tolist()
    dense = {d.index: d for d in model.dense}
    out = Estimate()
    blocks = sorted(set(dense) | set(contexts))
    for s in range(trace.num_steps):
        for block in blocks:
            ns = 0
            if block in dense:
                cost = CostModel(target, contexts[block].spec.dtype if block in contexts else "bf16")
                ns += max(cost.dense_ns(dense[block].flops_per_token, t) for t in local)
            if block in per_step:
                ns += per_step[block][s]
            out.steps.append((block, s, ns))
            out.makespan += ns
    return out
