"""The compiler's step estimator: how long a compiled module takes on its target, per block step.

It times the compiler's own view of each step (FSE-DP: the schedule's shard trips on
`streaming.execute`; baselines: the strategy's task graph on `taskgraph.execute`) with the same
cost model, and adds each block's dense part and, in dynamic mode, the controller's latency.
It is the second implementation the machine (`fsedp_compiler.sim`, which executes the emitted
instructions) is held equal to; `compile` prints it, `bench` and the cross-check use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from .costmodel import CostModel
from .dialects.fsedp import StaticScheduleOp
from .ir import require_target, spec_from_module
from .layers import layer_contexts, module_routing
from .ring import Ring
from .routing import RoutingTrace
from .scheduler import StepRouting, schedule
from .streaming import execute, trajectories
from .taskgraph import execute as execute_graph


@dataclass
class Estimate:
    """Estimated makespan (ns) and each (block, step)'s share, in run order."""

    makespan: int = 0
    steps: list[tuple[int, int, int]] = field(default_factory=list)
    """(block, step, ns) of every block step"""


def estimate_module(module: ModuleOp, trace: RoutingTrace | None = None) -> Estimate:
    """Estimate a module after its lowering (static: its own trace; dynamic: `trace`)."""
    from fsedp_compiler.baselines import Options, plan_layer
    from fsedp_compiler.passes.expand_dataflow import static_steps

    target = require_target(module, "estimate")
    model = spec_from_module(module)
    contexts = {c.spec.index: c for c in layer_contexts(module)}
    static = any(isinstance(c.schedule_op, StaticScheduleOp) or c.baseline_op is not None for c in contexts.values())
    if static:
        trace = module_routing(module)
    if trace is None:
        raise ValueError("a dynamic module needs a routing trace to estimate")
    n = target.num_chiplets
    local = np.bincount(trace.token_chiplet, minlength=n).tolist()
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    dense = {d.index: d for d in model.dense}
    per_step: dict[int, list[int]] = {}
    for index, ctx in contexts.items():
        cost = CostModel(target, ctx.spec.dtype)
        if ctx.baseline_op is not None:
            graphs = plan_layer(ctx.baseline_op.prop_str("strategy"), ctx.spec, ctx.plan, target, Ring(target.ring), trace,
                                positions[index], Options(bool(ctx.baseline_op.prop_int("skip_single")), len(contexts)))
            per_step[index] = [execute_graph(g, n).makespan for g in graphs]
            continue
        if isinstance(ctx.schedule_op, StaticScheduleOp):
            scheds = static_steps(ctx, target)
            extra = 0
        else:
            scheds = [schedule(StepRouting(*trace.step(positions[index], s), trace.token_chiplet, index, s),
                               ctx.plan, ctx.rings, cost, ctx.policy) for s in range(trace.num_steps)]
            extra = 1
        times = []
        for sched in scheds:
            trips = trajectories(sched, ctx.plan, ctx.rings, ctx.policy.trajectory)
            tokens = {st.expert: st.tokens for st in sched.streams}
            ns = execute(trips, ctx.plan, ctx.ring, cost, tokens).makespan
            times.append(ns + extra * cost.scheduler_ns(len(sched.streams)))
        per_step[index] = times
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
