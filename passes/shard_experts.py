"""shard-experts: the FSE-DP shard plan of every MoE layer (`fsedp.shard_plan`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.costmodel import PACKET_BYTES, CostModel
from fsedp_compiler.dialects.fsedp import ShardPlanOp
from fsedp_compiler.dialects.moe import LayerOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.flowcontrol import MIN_BUFFERS
from fsedp_compiler.fsedp.shardplan import ShardPlan, make_shard_plan
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import cached_trace, invalidate_after, module_model
from fsedp_compiler.ir.modules import op_error, require_target

#: shards-per-chiplet tried by the automatic choice (0), smallest first.
AUTO_CANDIDATES = tuple(range(1, 65))


#: buffers=0 (automatic): start from this many buffers to choose the shard size, then add
#: buffers while they fit in `AUTO_SRAM_SHARE` of the SRAM, up to `AUTO_MAX_BUFFERS` (shards
#: cut k times finer than that size for the tail: k times as many, up to `AUTO_CUT_MAX_BUFFERS`).
AUTO_BASE_BUFFERS = 6
AUTO_MAX_BUFFERS = 32
AUTO_CUT_MAX_BUFFERS = 64
AUTO_SRAM_SHARE = 0.5

#: buffers=0 and shards-per-chiplet=0: shards small enough that the last wave of a step with the
#: fewest active experts converges in at most this share of the step (`convergence_tail`).
AUTO_TAIL_SHARE = 0.03


def convergence_tail(plan: ShardPlan, target: Target, active: int) -> float:
    """The share of a step with `active` experts, each needed by one chiplet (the fewest tokens),
    that its last wave of loads takes to reach that chiplet: every channel's last load (R6: the
    same stream everywhere) goes to the one member, whose two in-links on its stream's ring (a
    stream streams on one ring, both ways at most) take ceil(C / 2) shard transfers in turn, plus
    one to fill that pipeline (the wave's shards start hops away), after each channel loaded
    active x ceil(M / C) shards. Both scale with the shard, so the share falls as 1 / g.
    (torus-4x4, a 16-token skewed OLMoE step: 28 us measured after the last load, 27.6 us
    modelled; without the fill 24.6 us, and counting every ring's in-links 12 us.)"""
    cost = CostModel(target, plan.layer.dtype)
    channels = len(plan.channels)
    tail = (-(-channels // 2) + 1) * cost.link_busy_ns(plan.max_shard_bytes)
    step = max(1, active) * -(-plan.num_shards // channels) * cost.dram_busy_ns(plan.max_shard_bytes)
    return tail / max(step, 1)


def tail_plan(layer: MoeLayerSpec, target: Target, base: ShardPlan, active: int) -> ShardPlan:
    """From `base` up, the fewest shards per chiplet whose `convergence_tail` is at most
    `AUTO_TAIL_SHARE` (else the smallest tail found) and whose base buffers fit, never cutting a
    shard below one packet (R7's 4 KiB: finer, descriptors and headers would dominate, which
    the cost model's default op overhead of 0 does not see). `active`: the fewest experts a
    step activates (a one-token step: top-k plus the shared ones)."""
    best, best_tail = base, convergence_tail(base, target, active)
    for g in range(base.num_shards // target.num_chiplets, AUTO_CANDIDATES[-1] + 1):
        if best_tail <= AUTO_TAIL_SHARE:
            break
        try:
            plan = make_shard_plan(layer, target, g, base.buffers)
        except FsedpError:
            continue
        if plan.max_shard_bytes < PACKET_BYTES:
            break
        tail = convergence_tail(plan, target, active)
        if tail < best_tail:
            best, best_tail = plan, tail
    return best


def auto_buffers_plan(layer: MoeLayerSpec, target: Target, shards_per_chiplet: int,
                      active: int | None = None) -> ShardPlan:
    """buffers=0 (the default): the shard size of B = 6, cut finer (shards-per-chiplet=0) until
    a step's last wave converges in at most 3% of it when the routing is known (`tail_plan`;
    `active`: the fewest experts a step of it activates; None, unknown routing: not cut), then
    as many buffers as fit in half the SRAM (6 to 32; k x 32, at most 64, for shards cut k times
    finer). Every strategy gets this plan (FSE-DP's shard buffers, the baselines' tile buffers)
    from the same SRAM. More buffers keep more shards in flight on a long ring: with R4's transit-first loads,
    FSE-DP reaches 96-98% of its schedule's bound at 16 buffers where 6 give 78-92% (16-256
    tokens on mesh-4x4, torus-4x4, hbm-8); finer shards shorten the tail of few-token steps
    (FSE-DP at one token on torus-4x4: 0.88x of tp with one shard per chiplet, 0.96x with four)."""
    base = (auto_plan(layer, target, AUTO_BASE_BUFFERS) if shards_per_chiplet == 0
            else make_shard_plan(layer, target, shards_per_chiplet, AUTO_BASE_BUFFERS))
    cut = tail_plan(layer, target, base, active) if shards_per_chiplet == 0 and active is not None else base
    # shards cut k times finer keep k times the buffers (the same bytes in flight, at most
    # AUTO_CUT_MAX_BUFFERS): with 32, finer shards starve a link-bound ring (hbm-8, 4 tokens:
    # 96.2 us at 32 buffers, 94.2 us at 64)
    most = min(AUTO_MAX_BUFFERS * cut.num_shards // base.num_shards, AUTO_CUT_MAX_BUFFERS)
    fit = int(target.chiplet.sram_bytes * AUTO_SRAM_SHARE) // cut.max_shard_bytes
    return make_shard_plan(layer, target, cut.num_shards // target.num_chiplets,
                           max(AUTO_BASE_BUFFERS, min(most, fit)))


def fewest_active(trace: RoutingTrace, layer_pos: int, num_shared: int) -> int:
    """The fewest experts any step of the trace activates in MoE layer `layer_pos` (shared included)."""
    experts = trace.experts[layer_pos]
    # bincount, not np.unique (whose first call imports numpy.ma, 10 ms of a small bench)
    return min(int(np.count_nonzero(np.bincount(experts[s].ravel()))) for s in range(trace.num_steps)) + num_shared


def auto_plan(layer: MoeLayerSpec, target: Target, buffers: int) -> ShardPlan:
    """The plan with the fewest shards per chiplet that divides F and fits B buffers in SRAM."""
    if buffers < MIN_BUFFERS:
        return make_shard_plan(layer, target, 1, buffers)  # raises the R4 error itself
    last: FsedpError | None = None
    for g in AUTO_CANDIDATES:
        try:
            return make_shard_plan(layer, target, g, buffers)
        except FsedpError as err:
            last = err
    assert last is not None
    raise FsedpError(f"no shards-per-chiplet up to {AUTO_CANDIDATES[-1]} works; last reason: {last.message}",
                     field="shards-per-chiplet")


@dataclass(frozen=True)
class ShardExpertsPass(ModulePass):
    """Cut every expert into M = g·N shards along F and deal them over all DRAM channels.

    `shards-per-chiplet` is g (0: the smallest g that divides F and fits `buffers` shard
    buffers in SRAM; with `buffers` 0 as well, cut finer until a step's last wave converges in
    3% of it, `auto_buffers_plan`); `buffers` is B, the shard buffers per chiplet (R4: at least
    2; 0, the default: as many as fit in half the SRAM, 6 to 32, up to 64 for shards cut
    finer); `trace`: a routing trace whose fewest active experts per step size the shards
    (without one they are not cut: a dynamic program serves any batch).
    """

    name = "shard-experts"

    shards_per_chiplet: int = 0
    buffers: int = 0
    trace: str = ""
    """a routing trace: the automatic shard size is cut for its fewest active experts per step
    (without one the shards stay whole)"""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = require_target(op, self.name)
        routing = cached_trace(self.trace, module_model(op)) if self.trace and self.buffers == 0 else None
        invalidate_after(op, "target")  # the old plans and everything derived from them
        for layer_op in [o for o in op.ops if isinstance(o, LayerOp)]:
            spec = layer_op.spec
            try:
                if self.buffers == 0:
                    active = (None if routing is None else
                              fewest_active(routing, routing.layer_indices.index(spec.index), spec.num_shared))
                    plan = auto_buffers_plan(spec, target, self.shards_per_chiplet, active)
                elif self.shards_per_chiplet == 0:
                    plan = auto_plan(spec, target, self.buffers)
                else:
                    plan = make_shard_plan(spec, target, self.shards_per_chiplet, self.buffers)
            except FsedpError as err:
                raise op_error(layer_op, err.message) from None
            Rewriter.insert_op(ShardPlanOp.from_plan(plan), InsertPoint.after(layer_op))
