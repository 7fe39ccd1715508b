"""expand-dataflow: fold when/where against the static schedule into explicit instructions.

For every routed step each chiplet gets the step's stream table (STREAM rows, R6 order) and,
per stream, one range instruction per role it plays: LOADS per DRAM channel holding shards
(naming the shards, their DRAM address from the program's layout, and where their trajectory
starts computing and ends), RECVS/SENDS per port the shards arrive/leave by, FFNS when it is in
S_e, FREES for the shards that visit it; then SYNC. The counts come from each shard home's arc on the ring
(`streaming.stream_counts`), so expansion costs O(streams x chiplets) per step however many shards
an expert has; the instructions live in `dataflow.instructions` dense arrays (coarse IR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.dataflow import FIELDS
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.layers import LayerContext, layer_contexts
from fsedp_compiler.ir.rows import ir_row, stream_rows
from fsedp_compiler.isa import port_maps
from fsedp_compiler.ir.layout import LayerLayout, build_layouts, fsedp_placement
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW, directed_routes
from fsedp_compiler.fsedp.scheduler import Stream, StepSchedule
from fsedp_compiler.fsedp.streaming import StreamCounts, stream_counts
from fsedp_compiler.inputs.target import Target

#: the ISA's direction of a stream row (`isa.opcodes.DIRECTIONS`)
_DIR_BIT = {CW: 0, CCW: 1, SHORT: 2, SHORT_CCW: 3}


def static_steps(ctx: LayerContext, target: Target) -> list[StepSchedule]:
    """Each step's schedule, rebuilt from the IR alone (the static schedule holds every decision
    and each member's local token count)."""
    op = ctx.schedule_op
    assert isinstance(op, StaticScheduleOp)
    n = target.num_chiplets
    off, ex = op.prop_array("offsets"), op.prop_array("experts")
    dirs, est = op.prop_array("directions"), op.prop_array("estimated_ns")
    rings = op.prop_array("rings")
    out = []
    for s in range(op.prop_int("steps")):
        streams = []
        for i in range(int(off[s]), int(off[s + 1])):
            chiplets, counts = op.stream_members(i)
            tokens = [0] * n
            for c, t in zip(chiplets.tolist(), counts.tolist()):
                tokens[c] = t
            members = sum(1 << c for c in chiplets.tolist())
            streams.append(Stream(int(ex[i]), members, int(dirs[i]), tuple(tokens), int(rings[i])))
        out.append(StepSchedule(ctx.spec.index, s, tuple(streams), int(est[s])))
    return out


def step_instructions(sched: StepSchedule, ctx: LayerContext, ports: list[dict[int, int]], n: int,
                      layout: LayerLayout) -> list[list[tuple]]:
    """Per chiplet, the IR rows (`irrows`) of one step: the stream table, then per stream its ranges."""
    plan, rings, rule = ctx.plan, ctx.rings, ctx.policy.trajectory
    s = sched.step
    rows: list[list[tuple]] = [[] for _ in range(n)]
    table = [r for st in sched.streams for r in stream_rows(s, st.expert, _DIR_BIT[st.direction], st.members,
                                                             st.ring)]
    for c in range(n):
        rows[c].extend(table)
    channels, m = len(plan.channels), plan.num_shards
    for st in sched.streams:
        e, ring = st.expert, rings[st.ring]
        size = plan.shard_bytes(e)
        per_way = stream_counts(plan, ring, e, st.members, st.direction, rule)  # a SHORT stream: both ways
        ways, entries, lengths = directed_routes(ring, st.members, st.direction, rule)  # every home's, O(N)
        for index, k in sorted(plan.channel_counts(e).items(), key=lambda ik: plan.channels[ik[0]]):
            if not k:
                continue
            c, ch = plan.channels[index]
            end = ring.order[(ring.pos(c) + ways[c] * lengths[c]) % ring.size]
            j0 = (index - e * m) % channels  # shards j0, j0 + C, ... are dealt to this channel
            rows[c].append(ir_row("loads", ch=ch, s=s, e=e, j=j0, stride=channels, n=k, bytes=size,
                                  addr=int(layout.addr[e, j0]), entry=entries[c], end=end))
        for c in range(n):
            visits = sum(counts.visits[c] for counts in per_way.values())
            if not visits:
                continue
            for role, k_of, side in (("recvs", StreamCounts.recvs, -1), ("sends", StreamCounts.sends, 1)):
                by_port = sorted((ports[c][ring.step(c, side * d)], k) for d, counts in per_way.items()
                                 if (k := k_of(counts, c)))
                for port, k in by_port:
                    rows[c].append(ir_row(role, port=port, s=s, e=e, n=k, bytes=size))
            if st.tokens[c]:
                rows[c].append(ir_row("ffns", s=s, e=e, n=m, tokens=st.tokens[c]))
            rows[c].append(ir_row("frees", s=s, e=e, n=visits))
    for c in range(n):
        rows[c].append(ir_row("sync", s=s))
    return rows


@dataclass(frozen=True)
class ExpandDataflowPass(ModulePass):
    """Static mode: replace each `dataflow.layer` template with the explicit instructions of every
    routed step (`dataflow.instructions`). Dynamic programs are left as they are."""

    name = "expand-dataflow"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = require_target(op, self.name)
        programs = [o for o in op.ops if isinstance(o, df.ProgramOp) and o.prop_str("mode") == "static"]
        if not programs:
            return
        ports = port_maps(target.edges, target.num_chiplets)
        n = target.num_chiplets
        per_layer: dict[int, list[dict[str, np.ndarray]]] = {}
        per_layer_offsets: dict[int, list[np.ndarray]] = {}
        contexts = layer_contexts(op)
        layouts = build_layouts([c.plan for c in contexts], [fsedp_placement(c.plan) for c in contexts])
        for lctx in contexts:
            if not isinstance(lctx.schedule_op, StaticScheduleOp):
                raise FsedpError(f"layer {lctx.spec.index} has no static schedule; run schedule-streams{{mode=static}}")
            chip_rows: list[list[tuple]] = [[] for _ in range(n)]
            chip_offsets: list[list[int]] = [[0] for _ in range(n)]
            for sched in static_steps(lctx, target):
                for c, rows in enumerate(step_instructions(sched, lctx, ports, n, layouts[lctx.spec.index])):
                    chip_rows[c].extend(rows)
                    chip_offsets[c].append(len(chip_rows[c]))
            per_layer[lctx.spec.index] = [_columns(rows) for rows in chip_rows]
            per_layer_offsets[lctx.spec.index] = [np.asarray(o) for o in chip_offsets]
        for program in programs:
            c = program.prop_int("chiplet")
            for layer_op in [o for o in program.body.block.ops if isinstance(o, df.LayerOp)]:
                index = layer_op.prop_int("layer")
                new = df.InstructionsOp.build(index, per_layer_offsets[index][c], per_layer[index][c])
                Rewriter.replace_op(layer_op, new)
        for template in [o for o in op.ops if isinstance(o, df.TemplateOp)]:
            Rewriter.erase_op(template)  # folded into every step's instructions


def _columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    if not rows:
        return {f: np.zeros(0, dtype=np.int64) for f, _ in FIELDS}
    arr = np.asarray(rows, dtype=np.int64)
    return {f: arr[:, i] for i, (f, _) in enumerate(FIELDS)}
