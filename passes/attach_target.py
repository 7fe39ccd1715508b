"""attach-target: put the chiplet system (a preset name or a TOML file) on the module."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fsedp_compiler.dialects.chiplet import SYSTEM_ATTR, SystemAttr
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.ir.layers import invalidate_after


@dataclass(frozen=True)
class AttachTargetPass(ModulePass):
    """Attach `#chiplet.system` for `target` (preset name or path to a .toml) as `chiplet.system`.

    A module that already has a system gets the new one: re-targeting is explicit, never merged.
    """

    name = "attach-target"

    target: str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        op.attributes[SYSTEM_ATTR] = SystemAttr.from_target(resolve_target(self.target))
        invalidate_after(op, "target")  # every plan, stream, schedule and program was for the old one
