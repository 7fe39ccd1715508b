"""A module's baseline layers lowered from the IR alone (its routing, `fsedp.baseline` ops and
shard plans), a step at a time: shared by lower-baseline (every step, into
`dataflow.instructions`) and emit-isa (one step at a time straight into the `.bin` files, so that
a long trace is never in memory whole). Both give the same rows, step by step.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.baselines import Options, layer_graphs, placement
from fsedp_compiler.baselines.encode import graph_rows
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import LayerContext, layer_contexts, module_routing
from fsedp_compiler.ir.layout import LayerLayout, build_layouts, fsedp_placement
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.rows import rows_to_columns
from fsedp_compiler.isa import port_maps

Rows = list[tuple[int, ...]]


def module_layouts(module: ModuleOp) -> dict[int, LayerLayout]:
    """The DRAM image of the module's program: FSE-DP's deal, or the baseline strategy's placement."""
    target = require_target(module, "emit-isa")
    contexts = layer_contexts(module)
    place = [placement(c.baseline_op.prop_str("strategy"), c.plan, target) if c.baseline_op is not None
             else fsedp_placement(c.plan) for c in contexts]
    return build_layouts([c.plan for c in contexts], place)


class BaselineExpansion:
    """Lowers the baseline layers of `module` (those with an `fsedp.baseline` op) on the routing
    `trace` (default: the module's `fsedp.routing`): `steps(layer)` yields each step's rows."""

    def __init__(self, module: ModuleOp, where: str, trace: RoutingTrace | None = None) -> None:
        self.target = require_target(module, where)
        self.num_chiplets = self.target.num_chiplets
        routing = trace if trace is not None else module_routing(module)
        if routing is None:
            raise FsedpError("a baseline layer needs the routing in the IR; run lower-baseline first")
        self.trace = routing
        self.ports = port_maps(self.target.edges, self.num_chiplets)
        contexts = layer_contexts(module)
        self._contexts: dict[int, LayerContext] = {c.spec.index: c for c in contexts}
        self._layouts = module_layouts(module)
        self._moe_layers = len(contexts)
        self._positions = {index: pos for pos, index in enumerate(routing.layer_indices)}

    def layers(self) -> list[int]:
        """The baseline layers, in module order."""
        return [i for i, c in self._contexts.items() if c.baseline_op is not None]

    def steps(self, layer: int) -> Iterator[list[Rows]]:
        """Per routed step of `layer`, in step order, each chiplet's instruction rows (made when
        asked: the iterator holds no step while suspended)."""
        lctx = self._contexts[layer]
        op = lctx.baseline_op
        assert op is not None
        options = Options(hydra_skip_single=bool(op.prop_int("skip_single")), moe_layers=self._moe_layers)
        graphs = layer_graphs(op.prop_str("strategy"), lctx.spec, lctx.plan, self.target, Ring(self.target.ring),
                              self.trace, self._positions[layer], options)
        layout = self._layouts[layer]
        return map(lambda graph: graph_rows(graph, self.ports, self.num_chiplets, layout), graphs)

    def step_columns(self, layer: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """Per routed step of `layer`, its rows as one table in chiplet order (`dataflow.
        instructions` columns) and each chiplet's bounds in it (n + 1 indices)."""
        return map(_as_table, self.steps(layer))


def _as_table(per_chiplet: list[Rows]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-chiplet rows as one table of columns in chiplet order and each chiplet's bounds."""
    bounds = np.cumsum([0] + [len(rows) for rows in per_chiplet])
    return rows_to_columns([r for rows in per_chiplet for r in rows]), bounds
