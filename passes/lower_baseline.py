"""lower-baseline: lower every MoE layer with a baseline strategy (EP, TP, DP, ...) to static
per-chiplet dataflow programs, one `dataflow.instructions` per layer holding every routed step.

The strategy (fsedp_compiler/baselines) turns each step's routing into a task graph with the
shard plan's tiles and B buffers; `baselines.encode` writes it as task instructions. The layer
gets an `fsedp.baseline` op recording the strategy; the routing goes into the IR (`fsedp.routing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.baselines import BASELINES, Options, placement, plan_layer
from fsedp_compiler.baselines.encode import graph_rows
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.fsedp import BaselineOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.ir.layers import cached_trace, invalidate_after, layer_contexts, module_model
from fsedp_compiler.ir.layout import build_layouts
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.rows import rows_to_columns
from fsedp_compiler.isa import port_maps

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

    def apply(self, ctx: Context, op: ModuleOp) -> None:
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
        n = target.num_chiplets
        ports = port_maps(target.edges, target.num_chiplets)
        positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
        options = Options(hydra_skip_single=self.hydra_skip_single, moe_layers=len(layer_contexts(op)))
        per_layer: dict[int, list[tuple[np.ndarray, dict[str, np.ndarray]]]] = {}
        contexts = layer_contexts(op)
        layouts = build_layouts([c.plan for c in contexts], [placement(self.strategy, c.plan, target) for c in contexts])
        for lctx in contexts:
            index = lctx.spec.index
            if index not in positions:
                raise FsedpError(f"the trace has no routing for MoE layer {index}", path=self.trace)
            graphs = plan_layer(self.strategy, lctx.spec, lctx.plan, target, Ring(target.ring), trace,
                                positions[index], options)
            chip_rows: list[list[tuple]] = [[] for _ in range(n)]
            offsets: list[list[int]] = [[0] for _ in range(n)]
            for graph in graphs:
                for c, rows in enumerate(graph_rows(graph, ports, n, layouts[index])):
                    chip_rows[c].extend(rows)
                    offsets[c].append(len(chip_rows[c]))
            per_layer[index] = [(np.asarray(offsets[c]), rows_to_columns(chip_rows[c])) for c in range(n)]
            assert lctx.plan_op is not None
            Rewriter.insert_op(BaselineOp.build(index, self.strategy, trace.num_steps, self.hydra_skip_single),
                               InsertPoint.after(lctx.plan_op))
        blocks = sorted({d.index for d in model.dense} | set(per_layer))
        dense = {d.index for d in model.dense}
        for c in range(n):
            body: list[Operation] = []
            for index in blocks:
                if index in dense:
                    body.append(df.DenseOp.build(index))
                if index in per_layer:
                    offsets_c, columns = per_layer[index][c]
                    body.append(df.InstructionsOp.build(index, offsets_c, columns))
            op.body.block.add_op(df.ProgramOp.build(c, "static", body))
