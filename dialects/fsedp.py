"""The `fsedp` dialect: the shard plan and the expert streams of FSE-DP (DESIGN.md §1).

    fsedp.shard_plan layer 0 shards 16 buffers 4 shard_bytes 6144 shared_shard_bytes 0 channels [0, 1] channel_ids [0, 0]
    fsedp.streams layer 0 ring [0, 1, 3, 2] order paired direction balanced
    fsedp.routing layers [0, 1] steps 2 tokens 8 top_k 2 chiplets 4 meta "{...}" token_chiplet array<i32: ...> ...
    fsedp.static_schedule layer 0 steps 2 shards 16 buffers 4 offsets array<i32: 0, 3, 5> experts array<i32: ...> ...
    fsedp.dynamic_schedule layer 0
    fsedp.baseline layer 0 strategy "ep" steps 2 skip_single 0

The virtualization rules are verified on these ops (not only ensured by the passes that make
them): R1 the ring is a Hamiltonian cycle over the target's links; R2/R3 every stream has a
non-empty needing set inside the system and a ring direction; R4 at least two shard buffers,
and at least two per direction when a step streams both ways, and they fit in SRAM; R6 a step
lists each expert once, in one global order.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import I64, DenseArrayBase, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Dialect, Operation
from xdsl.irdl import irdl_op_definition, prop_def
from xdsl.utils.exceptions import VerifyException

from fsedp_compiler.dialects.chiplet import SYSTEM_ATTR, SystemAttr
from fsedp_compiler.dialects.moe import LayerOp
from fsedp_compiler.dialects.syntax import KeywordSyntax, dense, int_attr
from fsedp_compiler.fsedp.flowcontrol import MIN_BUFFERS, min_buffers
from fsedp_compiler.fsedp.policy import DIRECTIONS, ORDERS, RINGS, TRAJECTORIES
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.topology import ring_problem
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.strategies import BASELINES


def enclosing_module(op: Operation) -> ModuleOp | None:
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, ModuleOp):
        parent = parent.parent_op()
    return parent


def module_target_of(op: Operation) -> Target | None:
    module = enclosing_module(op)
    attr = module.attributes.get(SYSTEM_ATTR) if module is not None else None
    return attr.target() if isinstance(attr, SystemAttr) else None


def layer_of(op: Operation, index: int) -> MoeLayerSpec | None:
    module = enclosing_module(op)
    if module is None:
        return None
    for other in module.ops:
        if isinstance(other, LayerOp) and other.index.value.data == index:
            return other.spec
    return None


def check_layer_exists(op: Operation) -> None:
    """A per-layer op names its `moe.layer` by index: in a module, that layer must exist (an op
    left for a layer the module no longer has is stale)."""
    index = op.properties["layer"]
    assert isinstance(index, IntegerAttr)
    module = enclosing_module(op)
    if module is not None and layer_of(op, index.value.data) is None:
        raise VerifyException(f"layer {index.value.data}: the module has no moe.layer with this index")


def shard_plan_of(op: Operation, index: int) -> ShardPlanOp | None:
    module = enclosing_module(op)
    if module is None:
        return None
    for other in module.ops:
        if isinstance(other, ShardPlanOp) and other.prop_int("layer") == index:
            return other
    return None


@irdl_op_definition
class ShardPlanOp(KeywordSyntax):
    """A layer's shard plan: M shards per expert, B buffers, shard sizes, DRAM channels dealt to."""

    name = "fsedp.shard_plan"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"), ("shards", "int"), ("buffers", "int"), ("shard_bytes", "int"),
              ("shared_shard_bytes", "int"), ("channels", "ints"), ("channel_ids", "ints"))

    layer = prop_def(IntegerAttr[I64])
    shards = prop_def(IntegerAttr[I64])
    buffers = prop_def(IntegerAttr[I64])
    shard_bytes = prop_def(IntegerAttr[I64])
    shared_shard_bytes = prop_def(IntegerAttr[I64])
    channels = prop_def(DenseArrayBase)
    channel_ids = prop_def(DenseArrayBase)

    @staticmethod
    def from_plan(plan: ShardPlan) -> ShardPlanOp:
        shared = plan.shard_bytes(plan.layer.num_experts) if plan.layer.num_shared else 0
        return ShardPlanOp.create(properties={
            "layer": int_attr(plan.layer.index),
            "shards": int_attr(plan.num_shards),
            "buffers": int_attr(plan.buffers),
            "shard_bytes": int_attr(plan.shard_bytes(0)),
            "shared_shard_bytes": int_attr(shared),
            "channels": dense([c for c, _ in plan.channels], 64),
            "channel_ids": dense([ch for _, ch in plan.channels], 64),
        })

    def plan(self, layer: MoeLayerSpec) -> ShardPlan:
        chans = tuple(zip(self.prop_array("channels").tolist(), self.prop_array("channel_ids").tolist()))
        return ShardPlan(layer=layer, num_shards=self.prop_int("shards"), buffers=self.prop_int("buffers"), channels=chans)

    def verify_(self) -> None:
        check_layer_exists(self)
        m, b = self.prop_int("shards"), self.prop_int("buffers")
        if m < 1:
            raise VerifyException(f"shards must be >= 1, got {m}")
        if b < MIN_BUFFERS:
            raise VerifyException(f"R4: a DRAM load next to a critical bubble needs two free shard buffers, so "
                                  f"buffers must be >= {MIN_BUFFERS}, got {b}")
        chips, ids = self.prop_array("channels"), self.prop_array("channel_ids")
        if len(chips) == 0 or len(chips) != len(ids):
            raise VerifyException("channels and channel_ids must be non-empty and of equal length")
        layer, target = layer_of(self, self.prop_int("layer")), module_target_of(self)
        if layer is not None:
            plan = self.plan(layer)
            if layer.d_ffn % m or (layer.num_shared and layer.d_ffn_shared % m):
                raise VerifyException(f"d_ffn of layer {layer.index} is not divisible by {m} shards")
            if plan.shard_bytes(0) != self.prop_int("shard_bytes"):
                raise VerifyException(f"shard_bytes {self.prop_int('shard_bytes')} does not match the layer "
                                      f"({plan.shard_bytes(0)})")
        if target is not None:
            for c, ch in zip(chips.tolist(), ids.tolist()):
                if c not in target.dram_at or not 0 <= ch < target.chiplet.dram_channels:
                    raise VerifyException(f"channel ({c}, {ch}) is not a DRAM channel of {target.name}")
            need = b * max(self.prop_int("shard_bytes"), self.prop_int("shared_shard_bytes"))
            if need > target.chiplet.sram_bytes:
                raise VerifyException(f"R4: {b} shard buffers need {need} bytes of SRAM, "
                                      f"{target.name} has {target.chiplet.sram_bytes}")


@irdl_op_definition
class StreamsOp(KeywordSyntax):
    """A layer's expert streams: the virtual ring they follow (R1) and the scheduling policy."""

    name = "fsedp.streams"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"), ("ring", "ints"), ("order", "ident"), ("direction", "ident"))
    OPTIONAL: ClassVar[tuple[tuple[str, str], ...]] = (("trajectory", "nearest"), ("rings", "all"))

    layer = prop_def(IntegerAttr[I64])
    ring = prop_def(DenseArrayBase)
    order = prop_def(StringAttr)
    direction = prop_def(StringAttr)
    trajectory = prop_def(StringAttr)
    rings = prop_def(StringAttr)
    """all: streams may also follow the target's further edge-disjoint rings; one: R1's only"""

    @staticmethod
    def build(layer: int, ring: tuple[int, ...], order: str, direction: str, trajectory: str = "nearest",
              rings: str = "all") -> StreamsOp:
        return StreamsOp.create(properties={"layer": int_attr(layer), "ring": dense(ring, 64),
                                            "order": StringAttr(order), "direction": StringAttr(direction),
                                            "trajectory": StringAttr(trajectory), "rings": StringAttr(rings)})

    def verify_(self) -> None:
        check_layer_exists(self)
        if self.prop_str("order") not in ORDERS:
            raise VerifyException(f"R6: order must be one of {', '.join(ORDERS)}, got '{self.prop_str('order')}'")
        if self.prop_str("direction") not in DIRECTIONS:
            raise VerifyException(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.prop_str("trajectory") not in TRAJECTORIES:
            raise VerifyException(f"trajectory must be one of {', '.join(TRAJECTORIES)}")
        if self.prop_str("rings") not in RINGS:
            raise VerifyException("rings must be all or one")
        ring = tuple(self.prop_array("ring").tolist())
        target = module_target_of(self)
        if target is not None and (problem := ring_problem(target.num_chiplets, target.edges, ring)) is not None:
            raise VerifyException(f"R1: the virtual ring is not a Hamiltonian cycle of {target.name}: {problem}")


@irdl_op_definition
class StaticScheduleOp(KeywordSyntax):
    """The scheduler's decisions for every step of the module's routing (static mode): per step
    the streams in global order (R6) with their ring direction, and per stream its needing set
    S_e as chiplet ids with each member's local token count (any chiplet count). `shards` and
    `buffers` are the shard plan it was computed under: a schedule that no longer matches its
    layer's plan is stale (a verifier error)."""

    name = "fsedp.static_schedule"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (
        ("layer", "int"), ("steps", "int"), ("shards", "int"), ("buffers", "int"), ("offsets", "array"),
        ("experts", "array"), ("directions", "array"), ("member_offsets", "array"), ("members", "array"),
        ("tokens", "array"), ("estimated_ns", "array"), ("rings", "array"))

    layer = prop_def(IntegerAttr[I64])
    steps = prop_def(IntegerAttr[I64])
    shards = prop_def(IntegerAttr[I64])
    buffers = prop_def(IntegerAttr[I64])
    offsets = prop_def(DenseArrayBase)
    experts = prop_def(DenseArrayBase)
    directions = prop_def(DenseArrayBase)
    member_offsets = prop_def(DenseArrayBase)
    members = prop_def(DenseArrayBase)
    tokens = prop_def(DenseArrayBase)
    estimated_ns = prop_def(DenseArrayBase)
    rings = prop_def(DenseArrayBase)
    """per stream, the virtual ring it follows (0: R1's; `target.rings`)"""

    @staticmethod
    def build(layer: int, plan: ShardPlan, scheds: list) -> StaticScheduleOp:
        """From the scheduler's `StepSchedule`s of every step."""
        offsets = np.cumsum([0] + [len(s.streams) for s in scheds])
        streams = [st for s in scheds for st in s.streams]
        chiplets = [[c for c, t in enumerate(st.tokens) if t] for st in streams]
        return StaticScheduleOp.create(properties={
            "layer": int_attr(layer), "steps": int_attr(len(scheds)), "shards": int_attr(plan.num_shards),
            "buffers": int_attr(plan.buffers), "offsets": dense(offsets, 32),
            "experts": dense([st.expert for st in streams], 32), "directions": dense([st.direction for st in streams], 8),
            "member_offsets": dense(np.cumsum([0] + [len(m) for m in chiplets]), 32),
            "members": dense([c for m in chiplets for c in m], 32),
            "tokens": dense([st.tokens[c] for st, m in zip(streams, chiplets) for c in m], 32),
            "estimated_ns": dense([s.estimated_ns for s in scheds], 64),
            "rings": dense([st.ring for st in streams], 8)})

    def stream_members(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(member chiplets, their local tokens) of stream i."""
        off = self.prop_array("member_offsets")
        lo, hi = int(off[i]), int(off[i + 1])
        return self.prop_array("members")[lo:hi], self.prop_array("tokens")[lo:hi]

    def verify_(self) -> None:
        check_layer_exists(self)
        steps = self.prop_int("steps")
        off, ex = self.prop_array("offsets"), self.prop_array("experts")
        dirs, est = self.prop_array("directions"), self.prop_array("estimated_ns")
        moff, mem, tok = self.prop_array("member_offsets"), self.prop_array("members"), self.prop_array("tokens")
        if len(off) != steps + 1 or len(est) != steps or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(ex):
            raise VerifyException("offsets must be steps + 1 non-decreasing indices from 0 to the number of streams")
        rings = self.prop_array("rings")
        if len(ex) != len(dirs) or len(ex) != len(rings):
            raise VerifyException("experts, directions and rings must have one entry per stream")
        if np.any((dirs < -1) | (dirs > 2)):
            raise VerifyException("R2: every stream follows the ring in direction 1 or -1, or each shard the "
                                  "shorter way round (0: equal ways clockwise, 2: counter-clockwise)")
        if len(moff) != len(ex) + 1 or moff[0] != 0 or moff[-1] != len(mem) or len(tok) != len(mem):
            raise VerifyException("member_offsets must index members and tokens per stream")
        if np.any(np.diff(moff) <= 0):
            raise VerifyException("R2/R3: every stream needs a non-empty needing set S_e")
        if np.any(tok <= 0):
            raise VerifyException("a member of S_e holds at least one token routed to the expert")
        target = module_target_of(self)
        if target is not None and np.any((mem < 0) | (mem >= target.num_chiplets)):
            raise VerifyException(f"R3: a needing set names a chiplet outside the {target.num_chiplets} of {target.name}")
        if np.any(rings < 0) or (target is not None and np.any(rings >= len(target.rings))):
            raise VerifyException(f"R1: a stream follows a virtual ring the target does not have "
                                  f"({len(target.rings) if target is not None else '?'} rings)")
        layer = layer_of(self, self.prop_int("layer"))
        if layer is not None and np.any((ex < 0) | (ex >= layer.num_experts + layer.num_shared)):
            raise VerifyException(f"stream of an expert outside 0..{layer.num_experts + layer.num_shared - 1}")
        for s in range(steps):
            lo, hi = int(off[s]), int(off[s + 1])
            if len(np.unique(ex[lo:hi])) != hi - lo:
                raise VerifyException(f"R6: step {s} lists an expert twice; one global order has each stream once")
        plan = shard_plan_of(self, self.prop_int("layer"))
        if plan is not None:
            if (plan.prop_int("shards"), plan.prop_int("buffers")) != (self.prop_int("shards"), self.prop_int("buffers")):
                raise VerifyException(f"stale: computed under {self.prop_int('shards')} shards and {self.prop_int('buffers')} "
                                      f"buffers, the shard plan now has {plan.prop_int('shards')} and "
                                      f"{plan.prop_int('buffers')}; re-run schedule-streams")
            networks = 0
            for r in set(rings.tolist()):
                used = set(dirs[rings == r].tolist())
                networks += 2 if used & {0, 2} or used == {1, -1} else 1
            if plan.prop_int("buffers") < min_buffers(networks):
                raise VerifyException(f"R4: streaming on {networks} virtual networks needs a free slot per network "
                                      f"and one to load into (buffers >= {min_buffers(networks)})")


@irdl_op_definition
class RoutingOp(KeywordSyntax):
    """The routing a static program is compiled for, held in the IR (read once from its trace
    file): per MoE layer and step each token's top-k experts and gate weights (float32 bit
    patterns, exact through text), and each token's chiplet."""

    name = "fsedp.routing"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (
        ("layers", "ints"), ("steps", "int"), ("tokens", "int"), ("top_k", "int"), ("chiplets", "int"),
        ("meta", "str"), ("token_chiplet", "array"), ("experts", "array"), ("gate_bits", "array"))

    layers = prop_def(DenseArrayBase)
    steps = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
    top_k = prop_def(IntegerAttr[I64])
    chiplets = prop_def(IntegerAttr[I64])
    meta = prop_def(StringAttr)
    token_chiplet = prop_def(DenseArrayBase)
    experts = prop_def(DenseArrayBase)
    gate_bits = prop_def(DenseArrayBase)

    @staticmethod
    def build(trace: RoutingTrace) -> RoutingOp:
        return RoutingOp.create(properties={
            "layers": dense(list(trace.layer_indices), 64), "steps": int_attr(trace.num_steps),
            "tokens": int_attr(trace.num_tokens), "top_k": int_attr(trace.top_k),
            "chiplets": int_attr(trace.num_chiplets), "meta": StringAttr(json.dumps(trace.meta, sort_keys=True)),
            "token_chiplet": dense(trace.token_chiplet, 32), "experts": dense(trace.experts.reshape(-1), 32),
            "gate_bits": dense(np.ascontiguousarray(trace.weights, dtype=np.float32).reshape(-1).view(np.int32), 32)})

    def trace(self) -> RoutingTrace:
        shape = (len(self.prop_array("layers")), self.prop_int("steps"), self.prop_int("tokens"), self.prop_int("top_k"))
        return RoutingTrace(self.prop_array("experts").astype(np.int32).reshape(shape),
                            self.prop_array("gate_bits").astype(np.int32).view(np.float32).reshape(shape),
                            self.prop_array("token_chiplet").astype(np.int32), json.loads(self.prop_str("meta")))

    def verify_(self) -> None:
        n = len(self.prop_array("layers")) * self.prop_int("steps") * self.prop_int("tokens") * self.prop_int("top_k")
        if len(self.prop_array("experts")) != n or len(self.prop_array("gate_bits")) != n:
            raise VerifyException("experts and gate_bits hold layers x steps x tokens x top_k entries")
        tc = self.prop_array("token_chiplet")
        if len(tc) != self.prop_int("tokens") or (len(tc) and (tc.min() < 0 or tc.max() >= self.prop_int("chiplets"))):
            raise VerifyException("token_chiplet gives each token a chiplet of 0..chiplets-1")
        try:
            meta = json.loads(self.prop_str("meta"))
        except json.JSONDecodeError:
            raise VerifyException("meta must be a JSON object") from None
        if not isinstance(meta, dict) or [int(i) for i in meta.get("layers", [])] != self.prop_array("layers").tolist():
            raise VerifyException("meta must be a JSON object whose layers match")


@irdl_op_definition
class DynamicScheduleOp(KeywordSyntax):
    """Dynamic mode: the controller runs the scheduler each step with the policy of `fsedp.streams`."""

    name = "fsedp.dynamic_schedule"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"),)

    layer = prop_def(IntegerAttr[I64])

    def verify_(self) -> None:
        check_layer_exists(self)


@irdl_op_definition
class BaselineOp(KeywordSyntax):
    """A baseline strategy's lowering of a layer (not FSE-DP): which one (on the module's routing).

    Its per-step programs are `dataflow.instructions`; `skip_single` is Hydra's inexact option
    (experts routed one token are not computed)."""

    name = "fsedp.baseline"
    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "int"), ("strategy", "str"), ("steps", "int"),
                                                      ("skip_single", "int"))

    layer = prop_def(IntegerAttr[I64])
    strategy = prop_def(StringAttr)
    steps = prop_def(IntegerAttr[I64])
    skip_single = prop_def(IntegerAttr[I64])

    @staticmethod
    def build(layer: int, strategy: str, steps: int, skip_single: bool) -> BaselineOp:
        return BaselineOp.create(properties={
            "layer": int_attr(layer), "strategy": StringAttr(strategy), "steps": int_attr(steps),
            "skip_single": int_attr(int(skip_single))})

    def verify_(self) -> None:
        check_layer_exists(self)
        if self.prop_str("strategy") not in BASELINES:
            raise VerifyException(f"unknown baseline strategy '{self.prop_str('strategy')}'; "
                                  f"expected one of {', '.join(BASELINES)}")
        if self.prop_int("steps") < 1:
            raise VerifyException("a baseline lowering covers at least one step")
        if self.prop_int("skip_single") not in (0, 1):
            raise VerifyException("skip_single is 0 or 1")
        if self.prop_int("skip_single") and self.prop_str("strategy") != "hydra":
            raise VerifyException("skip_single is a hydra option")


FSEDP = Dialect("fsedp", [ShardPlanOp, StreamsOp, StaticScheduleOp, DynamicScheduleOp, BaselineOp, RoutingOp], [])
