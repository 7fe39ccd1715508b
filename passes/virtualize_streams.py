"""virtualize-streams: put every layer's expert streams on the target's virtual ring (R1–R6)."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.dialects.fsedp import ShardPlanOp, StreamsOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.policy import DIRECTIONS, ORDERS, RINGS, TRAJECTORIES
from fsedp_compiler.ir.layers import invalidate_after
from fsedp_compiler.ir.modules import require_target


@dataclass(frozen=True)
class VirtualizeStreamsPass(ModulePass):
    """Describe each layer's streams: the R1 ring they follow and the scheduling policy.

    `order` is the global stream order (R6): paired (heavy/light interleaved), work or id;
    `direction` is per-shard (each expert cw, ccw or every shard the shorter way round, to even out
    link load and shorten trips), balanced (one direction per expert) or cw (all clockwise);
    `trajectory` is nearest (FSE-DP, R2), or an ablation: fullring or single-entry; `rings` is
    all (per-shard streams may follow every edge-disjoint virtual ring of the target, e.g. both of
    a torus's) or one (R1's ring only).
    """

    name = "virtualize-streams"

    order: str = "paired"
    direction: str = "per-shard"
    trajectory: str = "nearest"
    rings: str = "all"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.order not in ORDERS:
            raise FsedpError(f"order must be one of {', '.join(ORDERS)}, got '{self.order}'", field="order")
        if self.direction not in DIRECTIONS:
            raise FsedpError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{self.direction}'",
                             field="direction")
        if self.trajectory not in TRAJECTORIES:
            raise FsedpError(f"trajectory must be one of {', '.join(TRAJECTORIES)}, got '{self.trajectory}'",
                             field="trajectory")
        if self.rings not in RINGS:
            raise FsedpError(f"rings must be all or one, got '{self.rings}'", field="rings")
        target = require_target(op, self.name)
        plans = [o for o in op.ops if isinstance(o, ShardPlanOp)]
        if not plans:
            raise FsedpError(f"{self.name} needs shard plans; run shard-experts first")
        invalidate_after(op, "plan")  # the old streams and everything derived from them
        for plan in plans:
            streams = StreamsOp.build(plan.prop_int("layer"), target.ring, self.order, self.direction, self.trajectory,
                                      self.rings)
            Rewriter.insert_op(streams, InsertPoint.after(plan))
