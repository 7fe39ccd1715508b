"""The static expansion of a module's FSE-DP layers into instruction columns, shared by
`expand-dataflow` (every step at once, into `dataflow.instructions`) and emit-isa (one step at a
time, straight into the `.bin` files, so that a long schedule is never in memory whole).

Both give the same rows: a layer's rows for a step range are exactly that range's rows of the
whole expansion (`expand_columns.layer_columns`).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.ir.expand_columns import LayerSchedule, PlanTables, layer_columns, layer_rows, plan_tables
from fsedp_compiler.ir.layers import LayerContext, layer_contexts
from fsedp_compiler.ir.layout import LayerLayout, build_layouts, fsedp_placement
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.static_schedule import layer_schedule
from fsedp_compiler.isa import port_maps

_TABLE = df.KINDS.index("table")

Columns = dict[str, np.ndarray]


def table_refs(sched: LayerSchedule) -> list[list[tuple[int, ...]]]:
    """Per step, the row that opens it on every chiplet: `table` (n = its streams), naming the
    step's stream table, which the program stores once (emit-isa's `streams.bin`). A schedule of
    some steps only (`layer_schedule(..., steps)`) gives n = 0 for the others."""
    counts = np.bincount(sched.step, minlength=sched.steps).tolist()
    return [[(_TABLE, 0, 0, s, 0, 0, 0, 0, k, 0, 0)] for s, k in enumerate(counts)]


class StaticExpansion:
    """Expands the static FSE-DP layers of `module` on demand: `columns(layer, steps)` gives the
    per-chiplet instruction columns of those steps. Only each layer's shard plan and its tables are
    kept between calls (`release` drops a layer's)."""

    def __init__(self, module: ModuleOp, where: str, layouts: dict[int, LayerLayout] | None = None) -> None:
        """`layouts`: the program's DRAM image when some layers are not FSE-DP's (`--strategy
        auto`; default: every layer dealt as FSE-DP deals it)."""
        target = require_target(module, where)
        self.num_chiplets = target.num_chiplets
        self.ports = port_maps(target.edges, target.num_chiplets)
        contexts = layer_contexts(module)
        self._contexts: dict[int, LayerContext] = {c.spec.index: c for c in contexts}
        self._layouts: dict[int, LayerLayout] | None = layouts
        self._all = contexts
        self._cached: dict[int, tuple[ShardPlan, list[Ring], str, PlanTables]] = {}

    def context(self, layer: int) -> LayerContext:
        """The layer's context; an error when it has no static schedule."""
        lctx = self._contexts[layer]
        if not isinstance(lctx.schedule_op, StaticScheduleOp):
            raise FsedpError(f"layer {layer} has no static schedule; run schedule-streams{{mode=static}}")
        return lctx

    def _layout(self, layer: int) -> LayerLayout:
        if self._layouts is None:  # the DRAM image: every layer's plan (addresses follow each other)
            self._layouts = build_layouts([c.plan for c in self._all], [fsedp_placement(c.plan) for c in self._all])
        return self._layouts[layer]

    def _args(self, layer: int, steps: range | None) -> tuple:
        lctx = self.context(layer)
        n = self.num_chiplets
        if layer not in self._cached:
            plan = lctx.plan
            self._cached[layer] = (plan, lctx.rings, lctx.policy.trajectory, plan_tables(plan, n))
        plan, rings, rule, tables = self._cached[layer]
        sched = layer_schedule(lctx, n, steps)
        return (sched, plan, rings, rule, self.ports, self._layout(layer), table_refs(sched), steps, tables)

    def columns(self, layer: int, steps: range | None = None) -> tuple[list[Columns], list[np.ndarray]]:
        """Per chiplet, the layer's instruction columns for `steps` (default: all) and the step
        offsets into them (every step indexed; empty outside `steps`)."""
        return layer_columns(*self._args(layer, steps))

    def rows(self, layer: int, steps: range | None = None) -> tuple[Columns, np.ndarray]:
        """The same rows as one table in chiplet order and each chiplet's bounds in it."""
        return layer_rows(*self._args(layer, steps))

    def release(self, layer: int) -> None:
        """Forget the layer's cached plan and tables (after its last step)."""
        self._cached.pop(layer, None)
