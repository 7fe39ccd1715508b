"""expand-dataflow: fold when/where against the static schedule into explicit instructions.

For every routed step each chiplet gets a `table` row naming the step's stream table (held once,
in the layer's `fsedp.static_schedule`; emit-isa writes it to `streams.bin`) and, per stream, one
range instruction per role it plays: LOADS per DRAM channel holding shards (naming the shards,
their DRAM address from the program's layout, and where their trajectory starts computing and
ends), RECVS/SENDS per port the shards arrive/leave by, FFNS when it is in S_e, FREES for the
shards that visit it; then SYNC. The counts come from each shard home's arc on the ring, for all
streams of a layer at once as numpy columns (`expand_columns`); the instructions live in
`dataflow.instructions` dense arrays (coarse IR).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.ir.layers import layer_contexts
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.static_expansion import StaticExpansion


@dataclass(frozen=True)
class ExpandDataflowPass(ModulePass):
    """Static mode: replace each `dataflow.layer` template with the explicit instructions of every
    routed step (`dataflow.instructions`). Dynamic programs are left as they are.

    `fsedpc compile` of a big static program does not run this pass: emit-isa expands the same
    instructions a step at a time straight into the `.bin` files (`ir/static_expansion.py`)."""

    name = "expand-dataflow"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = require_target(op, self.name)
        programs = [o for o in op.ops if isinstance(o, df.ProgramOp) and o.prop_str("mode") == "static"]
        if not programs:
            return
        n = target.num_chiplets
        slots = {(p.prop_int("chiplet"), o.prop_int("layer")): o for p in programs for o in p.body.block.ops
                 if isinstance(o, df.LayerOp)}
        expansion = StaticExpansion(op, self.name)
        for lctx in layer_contexts(op):  # one layer at a time: only its IR arrays outlive it
            index = lctx.spec.index
            cols, offsets = expansion.columns(index)
            expansion.release(index)
            for c in range(n):
                if (c, index) in slots:
                    Rewriter.replace_op(slots.pop((c, index)), df.InstructionsOp.build(index, offsets[c], cols[c]))
            del cols, offsets
        for template in [o for o in op.ops if isinstance(o, df.TemplateOp)]:
            Rewriter.erase_op(template)  # folded into every step's instructions
