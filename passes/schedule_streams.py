"""schedule-streams: run the lightweight scheduler per routed step (static) or defer it (dynamic)."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.dialects.fsedp import DynamicScheduleOp, RoutingOp, StaticScheduleOp
from fsedp_compiler.dialects.syntax import int_attr
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.scheduler import StepRouting, schedule
from fsedp_compiler.ir.layers import cached_trace, invalidate_after, layer_contexts, module_model
from fsedp_compiler.ir.modules import require_target


@dataclass(frozen=True)
class ScheduleStreamsPass(ModulePass):
    """Schedule every layer's streams: `mode=static` runs the scheduler for each step of `trace`
    (an .npz routing trace); `mode=dynamic` leaves it to the controller at run time."""

    name = "schedule-streams"

    mode: str = "dynamic"
    trace: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.mode not in ("static", "dynamic"):
            raise FsedpError(f"mode must be static or dynamic, got '{self.mode}'", field="mode")
        if self.mode == "static" and not self.trace:
            raise FsedpError("mode=static needs a routing trace: schedule-streams{mode=static trace=\"t.npz\"}",
                             field="trace")
        target = require_target(op, self.name)
        invalidate_after(op, "streams")  # old schedules, routing, baselines and programs
        layers = layer_contexts(op)
        if self.mode == "dynamic":
            for ctx_ in layers:
                _ = ctx_.ring  # needs virtualize-streams
                assert ctx_.streams_op is not None
                Rewriter.insert_op(DynamicScheduleOp.create(properties={"layer": int_attr(ctx_.spec.index)}),
                                   InsertPoint.after(ctx_.streams_op))
            return
        model = module_model(op)
        trace = cached_trace(self.trace, model)
        if trace.num_chiplets != target.num_chiplets:
            raise FsedpError(f"trace spreads tokens over {trace.num_chiplets} chiplets but {target.name} has "
                             f"{target.num_chiplets}", path=self.trace, field="chiplets")
        # the routing travels in the IR from here on: no later pass reads the file again
        replace_routing(op, trace)
        positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
        for ctx_ in layers:
            plan, ring, policy = ctx_.plan, ctx_.rings, ctx_.policy
            cost = CostModel(target, ctx_.spec.dtype)
            if ctx_.spec.index not in positions:
                raise FsedpError(f"the trace has no routing for MoE layer {ctx_.spec.index}", path=self.trace)
            scheds = [schedule(step_routing(trace, positions[ctx_.spec.index], ctx_.spec.index, s), plan, ring, cost, policy)
                      for s in range(trace.num_steps)]
            assert ctx_.streams_op is not None
            Rewriter.insert_op(StaticScheduleOp.build(ctx_.spec.index, plan, scheds), InsertPoint.after(ctx_.streams_op))


def step_routing(trace, layer_pos: int, layer_index: int, step: int) -> StepRouting:
    experts, weights = trace.step(layer_pos, step)
    return StepRouting(experts, weights, trace.token_chiplet, layer_index, step)


def replace_routing(module: ModuleOp, trace) -> None:
    """Put `trace` into the module as its `fsedp.routing` (replacing an earlier one)."""
    for old in [o for o in module.ops if isinstance(o, RoutingOp)]:
        Rewriter.erase_op(old)
    module.body.block.add_op(RoutingOp.build(trace))
