"""IR instruction columns as ISA records, and the shared stream-table file (`streams.bin`).

A static FSE-DP program stores each layer step's stream table once, for every chiplet: the
chiplets' steps open with a TABLE record naming it. The tables come from each layer's
`fsedp.static_schedule` (the IR's single copy), in program order (step, then layer).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.ir.expand_columns import DIR_BIT
from fsedp_compiler.ir.layers import LayerContext, layer_contexts
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.rows import rows_to_columns
from fsedp_compiler.ir.static_schedule import layer_schedule, static_steps, step_table_rows
from fsedp_compiler.isa import INSTR_DTYPE, OPCODE, OPS, STREAM, encode_tables

#: dataflow instruction kind (by index) -> ISA opcode: the one place the IR meets opcode numbers
_OPCODE_OF_KIND = np.array([OPCODE[name] for name in df.KINDS], dtype=np.uint8)
_USES_LAYER = np.array([v in OPS and "layer" in OPS[v].columns for v in range(256)])


def instruction_records(layer: int, cols: dict[str, np.ndarray], lo: int, hi: int) -> np.ndarray:
    """Rows lo..hi of `dataflow.instructions` columns of `layer` as ISA records."""
    arr = np.zeros(hi - lo, dtype=INSTR_DTYPE)
    for name in INSTR_DTYPE.names:
        if name == "layer":
            arr[name] = layer
        elif name == "opcode":
            arr[name] = _OPCODE_OF_KIND[cols["kind"][lo:hi]]
        elif name == "wide":
            arr[name] = cols[name][lo:hi].astype(np.int64).view(np.uint64)
        else:
            arr[name] = cols[name][lo:hi]
    # WAIT, MASK and other layer-less records keep layer 0 (unused columns are 0)
    arr["layer"][~_USES_LAYER[arr["opcode"]]] = 0
    return arr


_KIND_OF_OPCODE = np.full(256, -1, dtype=np.int64)
_KIND_OF_OPCODE[_OPCODE_OF_KIND] = np.arange(len(df.KINDS))


def ir_columns(recs: np.ndarray) -> dict[str, np.ndarray]:
    """ISA records back as `dataflow.instructions` columns (`instruction_records`' inverse; the
    layer column is dropped)."""
    cols = {f: recs[f].astype(np.int64) for f, _ in df.FIELDS if f not in ("kind", "wide")}
    return {"kind": _KIND_OF_OPCODE[recs["opcode"]], **cols, "wide": recs["wide"].view(np.int64)}


def _layer_tables(ctx: LayerContext, target: Target) -> list[np.ndarray]:
    """Per step, one layer's stream table as ISA records (numpy columns; Python rows only for
    member sets wider than 64 chiplets, which need MASK records)."""
    n, layer = target.num_chiplets, ctx.spec.index
    if n > 64:
        return [instruction_records(layer, rows_to_columns(rows), 0, len(rows)) if (rows := step_table_rows(s))
                else np.zeros(0, INSTR_DTYPE) for s in static_steps(ctx, target)]
    sched = layer_schedule(ctx, n)
    recs = np.zeros(len(sched.expert), dtype=INSTR_DTYPE)
    recs["opcode"], recs["layer"], recs["step"], recs["expert"] = STREAM, layer, sched.step, sched.expert
    recs["x"], recs["unit"] = DIR_BIT[sched.direction + 1], sched.ring
    bits = np.left_shift(np.uint64(1), np.arange(n, dtype=np.uint64))
    recs["wide"] = np.bitwise_or.reduce(np.where(sched.tokens > 0, bits, np.uint64(0)), axis=1)
    return np.split(recs, np.searchsorted(sched.step, np.arange(1, sched.steps)))


def module_stream_tables(module: ModuleOp) -> bytes | None:
    """The `streams.bin` bytes of a static module with FSE-DP layers (None: it has none)."""
    target = require_target(module, "emit-isa")
    contexts = sorted((c for c in layer_contexts(module) if isinstance(c.schedule_op, StaticScheduleOp)),
                      key=lambda c: c.spec.index)
    if not contexts:
        return None
    per_layer = [(c.spec.index, _layer_tables(c, target)) for c in contexts]
    tables = [(layer, s, steps[s]) for s in range(max(len(steps) for _, steps in per_layer))
              for layer, steps in per_layer if s < len(steps) and len(steps[s])]
    return encode_tables(tables)
