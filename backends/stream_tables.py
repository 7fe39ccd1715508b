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
from fsedp_compiler.ir import require_target
from fsedp_compiler.irrows import rows_to_columns
from fsedp_compiler.isa import INSTR_DTYPE, OPCODE, OPS, encode_tables
from fsedp_compiler.layers import layer_contexts
from fsedp_compiler.passes.expand_dataflow import static_steps, step_table_rows

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


def module_stream_tables(module: ModuleOp) -> bytes | None:
    """The `streams.bin` bytes of a static module with FSE-DP layers (None: it has none)."""
    target = require_target(module, "emit-isa")
    contexts = sorted((c for c in layer_contexts(module) if isinstance(c.schedule_op, StaticScheduleOp)),
                      key=lambda c: c.spec.index)
    if not contexts:
        return None
    per_layer = [(c.spec.index, static_steps(c, target)) for c in contexts]
    tables = []
    for s in range(max(len(steps) for _, steps in per_layer)):
        for layer, steps in per_layer:
            rows = step_table_rows(steps[s]) if s < len(steps) else []
            if rows:
                tables.append((layer, s, instruction_records(layer, rows_to_columns(rows), 0, len(rows))))
    return encode_tables(tables)
