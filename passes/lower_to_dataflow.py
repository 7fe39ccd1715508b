"""lower-to-dataflow: one routing-independent `dataflow.program` per chiplet, with when/where."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir.layers import invalidate_after, layer_contexts, module_mode, module_model
from fsedp_compiler.ir.modules import require_target


#: The name of the FSE-DP template every chiplet's layers run.
TEMPLATE = "fsedp"


def layer_template() -> df.TemplateOp:
    """The per-step program of an FSE-DP layer on any chiplet (DESIGN.md §1, R2–R5)."""
    shard_body: list[Operation] = [
        df.WhenOp.build("home", [df.LoadOp.create()]),
        df.WhenOp.build("inbound", [df.RecvOp.create()]),
        df.WhenOp.build("member", [df.FfnOp.create()]),
        df.WhenOp.build("forward", [df.WhereOp.build("next", [df.SendOp.create()])]),
        df.WhenOp.build("visit", [df.FreeOp.create()]),
    ]
    return df.TemplateOp.build(TEMPLATE, [df.StreamsOp.create(), df.ForEachShardOp.build(shard_body),
                                          df.SyncOp.create()])


@dataclass(frozen=True)
class LowerToDataflowPass(ModulePass):
    """Build the per-chiplet dataflow programs: per block `dataflow.dense`, per MoE layer a
    `dataflow.layer` running the shared when/where template once per step against the step's
    stream table."""

    name = "lower-to-dataflow"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = require_target(op, self.name)
        mode = module_mode(op)
        if mode is None:
            raise FsedpError(f"{self.name} needs schedules; run schedule-streams first")
        invalidate_after(op, "schedule")  # programs of an earlier lowering
        model = module_model(op)
        moe = {c.spec.index for c in layer_contexts(op)}
        blocks = sorted({d.index for d in model.dense} | moe)
        if moe:
            op.body.block.add_op(layer_template())
        for chiplet in range(target.num_chiplets):
            body: list[Operation] = []
            for index in blocks:
                if any(d.index == index for d in model.dense):
                    body.append(df.DenseOp.build(index))
                if index in moe:
                    body.append(df.LayerOp.build(index, TEMPLATE))
            op.body.block.add_op(df.ProgramOp.build(chiplet, mode, body))
