"""What the FSE-DP passes know about each MoE layer of a module, gathered in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.dialects.fsedp import (BaselineOp, DynamicScheduleOp, RoutingOp, ShardPlanOp, StaticScheduleOp,
                                           StreamsOp, module_target_of)
from fsedp_compiler.dialects.moe import LayerOp

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.inputs.model import ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.traces import RoutingTrace, load_trace
from fsedp_compiler.ir.modules import spec_from_module


@dataclass
class LayerContext:
    """One MoE layer: its spec, shard plan, streams (ring and policy) and schedule, if present."""

    spec: MoeLayerSpec
    layer_op: LayerOp
    plan_op: ShardPlanOp | None = None
    streams_op: StreamsOp | None = None
    schedule_op: StaticScheduleOp | DynamicScheduleOp | None = None
    baseline_op: BaselineOp | None = None

    @property
    def plan(self) -> ShardPlan:
        if self.plan_op is None:
            raise FsedpError(f"layer {self.spec.index} has no shard plan; run shard-experts first")
        return self.plan_op.plan(self.spec)

    @property
    def ring(self) -> Ring:
        if self.streams_op is None:
            raise FsedpError(f"layer {self.spec.index} has no streams; run virtualize-streams first")
        return Ring(tuple(self.streams_op.prop_array("ring").tolist()))

    @property
    def rings(self) -> list[Ring]:
        """The virtual rings its streams may follow: the target's (R1's ring first), or R1's alone
        under `rings one`."""
        ring = self.ring
        assert self.streams_op is not None
        target = module_target_of(self.streams_op)
        if self.policy.rings == "one" or target is None or target.ring != ring.order:
            return [ring]
        return [Ring(r) for r in target.rings]

    @property
    def policy(self) -> Policy:
        assert self.streams_op is not None
        return Policy(order=self.streams_op.prop_str("order"), direction=self.streams_op.prop_str("direction"),
                      trajectory=self.streams_op.prop_str("trajectory"), rings=self.streams_op.prop_str("rings"))


def layer_contexts(module: ModuleOp) -> list[LayerContext]:
    """Every MoE layer of the module in order, with the fsedp ops that refer to it."""
    contexts = {op.index.value.data: LayerContext(op.spec, op) for op in module.ops if isinstance(op, LayerOp)}
    for op in module.ops:
        if isinstance(op, (ShardPlanOp, StreamsOp, StaticScheduleOp, DynamicScheduleOp, BaselineOp)):
            ctx = contexts.get(op.prop_int("layer"))
            if ctx is None:
                continue
            if isinstance(op, ShardPlanOp):
                ctx.plan_op = op
            elif isinstance(op, StreamsOp):
                ctx.streams_op = op
            elif isinstance(op, BaselineOp):
                ctx.baseline_op = op
            else:
                ctx.schedule_op = op
    return [contexts[i] for i in sorted(contexts)]


def module_mode(module: ModuleOp) -> str | None:
    """static, dynamic, or None before schedule-streams (baseline lowerings are static)."""
    for ctx in layer_contexts(module):
        if isinstance(ctx.schedule_op, StaticScheduleOp) or ctx.baseline_op is not None:
            return "static"
        if isinstance(ctx.schedule_op, DynamicScheduleOp):
            return "dynamic"
    return None


#: What each pipeline stage derives from, in order: re-deciding a stage drops every later one.
STAGES = ("plan", "streams", "schedule", "programs")


def invalidate_after(module: ModuleOp, stage: str) -> None:
    """Erase every op derived from `stage` (a pass that re-decides it makes them stale)."""
    from fsedp_compiler.dialects.dataflow import ProgramOp, TemplateOp

    later = STAGES[STAGES.index(stage) + 1:] if stage in STAGES else STAGES
    kinds: tuple[type, ...] = ()
    if "plan" in later:
        kinds += (ShardPlanOp,)
    if "streams" in later:
        kinds += (StreamsOp,)
    if "schedule" in later:
        kinds += (StaticScheduleOp, DynamicScheduleOp, BaselineOp, RoutingOp)
    if "programs" in later:
        kinds += (ProgramOp, TemplateOp)
    for op in [o for o in module.ops if isinstance(o, kinds)]:
        op.detach()
        op.erase()


_TRACES: dict[tuple[str, float, int], RoutingTrace] = {}


def cached_trace(path: str, model: ModelSpec) -> RoutingTrace:
    """Load (once per file version) and validate a routing trace against the model."""
    try:
        st = os.stat(path)
    except OSError:
        raise FsedpError("routing trace not found", path=path) from None
    key = (os.path.abspath(path), st.st_mtime, st.st_size)
    if key not in _TRACES:
        _TRACES.clear()
        _TRACES[key] = load_trace(path, model)
    return _TRACES[key]


def module_routing(module: ModuleOp) -> RoutingTrace | None:
    """The routing a static module was scheduled or lowered for (its `fsedp.routing`), if any."""
    op = next((o for o in module.ops if isinstance(o, RoutingOp)), None)
    return None if op is None else op.trace()


def module_model(module: ModuleOp) -> ModelSpec:
    return spec_from_module(module)
