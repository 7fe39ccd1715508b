"""`emit-isa`: the last pass, writing the module's per-chiplet programs (backends/emit.py)."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fsedp_compiler.backends.emit import emit


@dataclass(frozen=True)
class EmitIsaPass(ModulePass):
    """Write the per-chiplet instruction streams and program.json into `output-dir`."""

    name = "emit-isa"

    output_dir: str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        emit(op, self.output_dir)
