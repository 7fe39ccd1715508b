"""The `dataflow` dialect: one program per chiplet, routing-independent until expanded.

A program holds, per decoder block, `dataflow.dense` (the non-MoE part on local tokens) and, on
MoE blocks, a `dataflow.layer` that runs a shared `dataflow.template` once per step: fetch the
step's stream table (R6 order), then for every shard of every stream decide with **when** (fire
a region when a runtime condition holds for this chiplet) and **where** (choose the destination
at run time). One template serves every chiplet and layer:

    dataflow.template name fsedp {
      dataflow.streams
      dataflow.foreach_shard {
        dataflow.when cond home { dataflow.load }
        dataflow.when cond inbound { dataflow.recv }
        dataflow.when cond member { dataflow.ffn }
        dataflow.when cond forward { dataflow.where policy next { dataflow.send } }
        dataflow.when cond visit { dataflow.free }
      }
      dataflow.sync
    }
    dataflow.program chiplet 0 mode dynamic {
      dataflow.dense layer 0
      dataflow.layer layer 0 template fsedp
    }

`expand-dataflow` (static mode) folds when/where against the schedule into
`dataflow.instructions`: the explicit instruction sequence of every step, kept in dense arrays
(one entry per instruction, fields as in `fsedp_compiler/isa`) so the IR stays coarse.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import I64, DenseArrayBase, IntegerAttr, StringAttr
from xdsl.ir import Dialect, Region, Block, Operation
from xdsl.irdl import irdl_op_definition, prop_def, region_def, traits_def
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

from fsedp_compiler.dialects.syntax import KeywordSyntax, dense, int_attr

#: Conditions of `dataflow.when` for the current shard on this chiplet.
CONDITIONS = ("home", "inbound", "member", "forward", "visit")
#: Destination policies of `dataflow.where`.
POLICIES = ("next",)
#: The kinds of expanded instruction `dataflow.instructions` holds, by name (stored as indices
#: into this table; `emit-isa` maps them to the ISA's opcodes, the only place that knows those).
#: A static FSE-DP step opens with a `table` row (n = its streams): the step's stream table itself
#: is the layer's one `fsedp.static_schedule`, shared by every chiplet.
KINDS: tuple[str, ...] = (
    "nop", "stream", "mask", "loads", "recvs", "sends", "ffns", "frees", "sync", "dense",
    "load", "send", "recv", "toksend", "tokrecv", "reduce", "ffn", "acc", "free", "wait", "table", "join",
)
#: The instruction fields of `dataflow.instructions`, with their array widths in bits: the kind,
#: then the ISA's record columns without the layer (stored once on the op). `wide` holds 64-bit
#: values (DRAM addresses, member sets) as signed i64.
FIELDS: tuple[tuple[str, int], ...] = (
    ("kind", 8), ("unit", 16), ("x", 32), ("step", 32), ("expert", 32), ("shard", 32), ("y", 32), ("z", 32),
    ("n", 64), ("arg", 64), ("wide", 64),
)


def _block_region(ops: list[Operation]) -> Region:
    return Region(Block(ops))


@irdl_op_definition
class ProgramOp(KeywordSyntax):
    """The program of one chiplet; `mode` is static (expanded per step) or dynamic."""

    name = "dataflow.program"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("chiplet", "int"), ("mode", "ident"))
    HAS_REGION: ClassVar[bool] = True

    chiplet = prop_def(IntegerAttr[I64])
    mode = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    @staticmethod
    def build(chiplet: int, mode: str, ops: list[Operation]) -> ProgramOp:
        return ProgramOp.create(properties={"chiplet": int_attr(chiplet), "mode": StringAttr(mode)},
                                regions=[_block_region(ops)])

    def verify_(self) -> None:
        if self.prop_str("mode") not in ("static", "dynamic"):
            raise VerifyException(f"mode must be static or dynamic, got '{self.prop_str('mode')}'")
        wanted = {o.prop_str("template") for o in self.body.block.ops if isinstance(o, LayerOp)}
        module = self.parent_op()
        if wanted and module is not None:
            have = {o.prop_str("name") for o in module.regions[0].block.ops if isinstance(o, TemplateOp)}
            missing = sorted(wanted - have)
            if missing:
                raise VerifyException(f"no dataflow.template named '{missing[0]}' in the module")


@irdl_op_definition
class TemplateOp(KeywordSyntax):
    """A named per-step program of when/where ops, shared by every (chiplet, layer) that runs it:
    the body runs once per step against that step's stream table."""

    name = "dataflow.template"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("name", "ident"),)
    HAS_REGION: ClassVar[bool] = True

    template_name = prop_def(StringAttr, prop_name="name")
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    @staticmethod
    def build(name: str, ops: list[Operation]) -> TemplateOp:
        return TemplateOp.create(properties={"name": StringAttr(name)}, regions=[_block_region(ops)])


@irdl_op_definition
class LayerOp(KeywordSyntax):
    """One MoE layer in a chiplet's program: it runs the named `dataflow.template` every step
    (until `expand-dataflow` replaces it with the explicit instructions of each routed step)."""

    name = "dataflow.layer"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"), ("template", "ident"))

    layer = prop_def(IntegerAttr[I64])
    template = prop_def(StringAttr)

    @staticmethod
    def build(layer: int, template: str) -> LayerOp:
        return LayerOp.create(properties={"layer": int_attr(layer), "template": StringAttr(template)})


@irdl_op_definition
class ForEachShardOp(KeywordSyntax):
    """Run the body once per shard of every stream of the current table, in table order (R6)."""

    name = "dataflow.foreach_shard"
    HAS_REGION: ClassVar[bool] = True
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    @staticmethod
    def build(ops: list[Operation]) -> ForEachShardOp:
        return ForEachShardOp.create(regions=[_block_region(ops)])


@irdl_op_definition
class WhenOp(KeywordSyntax):
    """Fire the body when `cond` holds for the current shard on this chiplet."""

    name = "dataflow.when"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("cond", "ident"),)
    HAS_REGION: ClassVar[bool] = True

    cond = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    @staticmethod
    def build(cond: str, ops: list[Operation]) -> WhenOp:
        return WhenOp.create(properties={"cond": StringAttr(cond)}, regions=[_block_region(ops)])

    def verify_(self) -> None:
        if self.prop_str("cond") not in CONDITIONS:
            raise VerifyException(f"unknown condition '{self.prop_str('cond')}'; expected one of {', '.join(CONDITIONS)}")


@irdl_op_definition
class WhereOp(KeywordSyntax):
    """Choose the destination of the body's sends at run time by `policy`."""

    name = "dataflow.where"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("policy", "ident"),)
    HAS_REGION: ClassVar[bool] = True

    policy = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    @staticmethod
    def build(policy: str, ops: list[Operation]) -> WhereOp:
        return WhereOp.create(properties={"policy": StringAttr(policy)}, regions=[_block_region(ops)])

    def verify_(self) -> None:
        if self.prop_str("policy") not in POLICIES:
            raise VerifyException(f"unknown policy '{self.prop_str('policy')}'; expected one of {', '.join(POLICIES)}")


@irdl_op_definition
class StreamsOp(KeywordSyntax):
    """Fetch the stream table of the next step from the scheduler (R6 order)."""

    name = "dataflow.streams"


@irdl_op_definition
class LoadOp(KeywordSyntax):
    """DRAM -> a free shard buffer (R4: needs two free buffers no virtual network holds)."""

    name = "dataflow.load"


@irdl_op_definition
class RecvOp(KeywordSyntax):
    """Reserve a buffer and receive the shard from a neighbour."""

    name = "dataflow.recv"


@irdl_op_definition
class FfnOp(KeywordSyntax):
    """Partial FFN of the shard on the local tokens routed to its expert, accumulated."""

    name = "dataflow.ffn"


@irdl_op_definition
class SendOp(KeywordSyntax):
    """Send the shard to the destination chosen by the enclosing where."""

    name = "dataflow.send"


@irdl_op_definition
class FreeOp(KeywordSyntax):
    """Release the shard's buffer after its last use here (R5)."""

    name = "dataflow.free"


@irdl_op_definition
class SyncOp(KeywordSyntax):
    """End of the layer step: local work done, then a barrier with every chiplet."""

    name = "dataflow.sync"




@irdl_op_definition
class DenseOp(KeywordSyntax):
    """The non-MoE part of decoder block `layer` on this chiplet's tokens."""

    name = "dataflow.dense"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"),)
    layer = prop_def(IntegerAttr[I64])

    @staticmethod
    def build(layer: int) -> DenseOp:
        return DenseOp.create(properties={"layer": int_attr(layer)})


@irdl_op_definition
class InstructionsOp(KeywordSyntax):
    """The expanded instructions of one MoE layer on one chiplet, all steps: step s is entries
    offsets[s]..offsets[s+1]; fields as in docs/isa.md."""

    name = "dataflow.instructions"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (
        ("layer", "int"), ("offsets", "array"), ("kind", "names"), *((f, "array") for f, _ in FIELDS[1:]))
    NAMES: ClassVar[tuple[str, ...]] = KINDS

    layer = prop_def(IntegerAttr[I64])
    offsets = prop_def(DenseArrayBase)
    kind = prop_def(DenseArrayBase)
    unit = prop_def(DenseArrayBase)
    x = prop_def(DenseArrayBase)
    step = prop_def(DenseArrayBase)
    expert = prop_def(DenseArrayBase)
    shard = prop_def(DenseArrayBase)
    y = prop_def(DenseArrayBase)
    z = prop_def(DenseArrayBase)
    n = prop_def(DenseArrayBase)
    arg = prop_def(DenseArrayBase)
    wide = prop_def(DenseArrayBase)

    @staticmethod
    def build(layer: int, offsets: np.ndarray, columns: dict[str, np.ndarray]) -> InstructionsOp:
        props = {"layer": int_attr(layer), "offsets": dense(offsets, 32)}
        props.update({f: dense(columns[f], bits) for f, bits in FIELDS})
        return InstructionsOp.create(properties=props)

    def columns(self) -> dict[str, np.ndarray]:
        return {f: self.prop_array(f) for f, _ in FIELDS}

    def verify_(self) -> None:
        n = len(self.prop_array("kind"))
        kinds = self.prop_array("kind")
        if n and (kinds.min() < 0 or kinds.max() >= len(KINDS)):
            raise VerifyException(f"instruction kinds are indices into {len(KINDS)} names")
        if any(len(self.prop_array(f)) != n for f, _ in FIELDS):
            raise VerifyException("every instruction field array must have the same length")
        off = self.prop_array("offsets")
        if len(off) == 0 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0):
            raise VerifyException("offsets must rise from 0 to the instruction count")


Dataflow = Dialect("dataflow", [ProgramOp, TemplateOp, LayerOp, ForEachShardOp, WhenOp, WhereOp, StreamsOp, LoadOp, RecvOp,
                                FfnOp, SendOp, FreeOp, SyncOp, DenseOp, InstructionsOp], [])
