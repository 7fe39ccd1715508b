"""lower-baseline: lower every MoE layer with a baseline strategy (EP, TP, DP, ...) to static
per-chiplet dataflow programs, one `dataflow.instructions` per layer holding every routed step.
(`fsedpc compile` of a program without its text forms lowers only the layers' ops and the
routing here, `LowerBaselineOpsPass`: emit-isa lowers each step straight into the `.bin` files.)

The strategy (fsedp_compiler/baselines) turns each step's routing into a task graph with the
shard plan's tiles and B buffers; `baselines.encode` writes it as task instructions. The layer
gets an `fsedp.baseline` op recording the strategy; the routing goes into the IR (`fsedp.routing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.baselines import BASELINES
from fsedp_compiler.baselines.expansion import BaselineExpansion
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.fsedp import BaselineOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import cached_trace, invalidate_after, layer_contexts, module_model
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.rows import rows_to_columns

from fsedp_compiler.passes.schedule_streams import replace_routing


@dataclass(frozen=True)
class LowerBaselinePass(ModulePass):
    """Lower every MoE layer with baseline `strategy` (ep, tp, dp, ...) for the routing `trace`.

    `trace` is an .npz routing trace; `hydra-skip-single` is Hydra's inexact option (experts
    routed one token are skipped). Needs shard-experts first (tiles and B buffers)."""

    name = "lower-baseline"

    strategy: str = "ep"
    trace: str = ""
    hydra_skip_single: bool = False

    #: whether the programs get the layers' `dataflow.instructions` (else emit-isa makes them)
    instructions: ClassVar[bool] = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        trace = self._lower_ops(op)
        per_layer: dict[int, list[tuple[np.ndarray, dict[str, np.ndarray]]]] = {}
        if self.instructions:
            expansion = BaselineExpansion(op, self.name, trace)
            n = expansion.num_chiplets
            for index in expansion.layers():
                chip_rows: list[list[tuple]] = [[] for _ in range(n)]
                offsets: list[list[int]] = [[0] for _ in range(n)]
                for step_rows in expansion.steps(index):
                    for c, rows in enumerate(step_rows):
                        chip_rows[c].extend(rows)
                        offsets[c].append(len(chip_rows[c]))
                per_layer[index] = [(np.asarray(offsets[c]), rows_to_columns(chip_rows[c])) for c in range(n)]
                del chip_rows
        self._programs(op, per_layer)

    def _lower_ops(self, op: ModuleOp) -> RoutingTrace:
        """Check the options and the trace, put the routing and each layer's `fsedp.baseline` into
        the module (after dropping an earlier lowering's), and return the routing."""
        if self.strategy not in BASELINES:
            raise FsedpError(f"unknown strategy '{self.strategy}'; expected one of {', '.join(BASELINES)}",
                             field="strategy")
        if self.hydra_skip_single and self.strategy != "hydra":
            raise FsedpError("hydra-skip-single only applies to strategy=hydra", field="hydra-skip-single")
        if not self.trace:
            raise FsedpError(f"{self.name} needs a routing trace: {self.name}{{strategy={self.strategy} "
                             f"trace=\"t.npz\"}}", field="trace")
        target = require_target(op, self.name)
        model = module_model(op)
        trace = cached_trace(self.trace, model)
        if trace.num_chiplets != target.num_chiplets:
            raise FsedpError(f"trace spreads tokens over {trace.num_chiplets} chiplets but {target.name} has "
                             f"{target.num_chiplets}", path=self.trace, field="chiplets")
        invalidate_after(op, "plan")  # streams, schedules, routing and programs of an earlier lowering
        replace_routing(op, trace)  # the routing travels in the IR from here on
        for lctx in layer_contexts(op):
            if lctx.spec.index not in trace.layer_indices:
                raise FsedpError(f"the trace has no routing for MoE layer {lctx.spec.index}", path=self.trace)
        for lctx in layer_contexts(op):
            assert lctx.plan_op is not None
            Rewriter.insert_op(BaselineOp.build(lctx.spec.index, self.strategy, trace.num_steps,
                                                self.hydra_skip_single), InsertPoint.after(lctx.plan_op))
        return trace

    def _programs(self, op: ModuleOp, per_layer: dict[int, list[tuple[np.ndarray, dict[str, np.ndarray]]]]) -> None:
        """Every chiplet's static program: its dense blocks and the MoE layers in `per_layer`, in
        block order."""
        n = require_target(op, self.name).num_chiplets
        model = module_model(op)
        dense = {d.index for d in model.dense}
        blocks = sorted(dense | {c.spec.index for c in layer_contexts(op)})
        for c in range(n):
            body: list[Operation] = []
            for index in blocks:
                if index in dense:
                    body.append(df.DenseOp.build(index))
                if index in per_layer:
                    offsets_c, columns = per_layer[index][c]
                    body.append(df.InstructionsOp.build(index, offsets_c, columns))
            op.body.block.add_op(df.ProgramOp.build(c, "static", body))


@dataclass(frozen=True)
class LowerBaselineOpsPass(LowerBaselinePass):
    """lower-baseline without the MoE layers' instructions in the programs (their dense blocks
    only): `fsedpc compile` writing no text forms leaves them to emit-isa, which lowers a step at
    a time into the `.bin` files (`baselines/expansion.py`), the same bytes."""

    instructions: ClassVar[bool] = False
