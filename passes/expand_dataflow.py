"""expand-dataflow: fold when/where against the static schedule into explicit instructions.

For every routed step the schedule's streams become shard trips (R1–R5) that are executed on
the engines with the cost model (`streaming.execute`); each chiplet's instructions are the ops
it ran, in the order it ran them, so every engine's order is one that completes (no deadlock).
Per-instruction detail goes into `dataflow.instructions` dense arrays: the IR stays coarse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from fsedp_compiler.backends.isa import OPCODE
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.dataflow import FIELDS
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir import require_target
from fsedp_compiler.layers import LayerContext, cached_trace, layer_contexts, module_model
from fsedp_compiler.ring import CCW
from fsedp_compiler.scheduler import Stream, StepSchedule, local_tokens
from fsedp_compiler.streaming import FFN, LOAD, SEND, StepTimeline, execute, trajectories
from fsedp_compiler.target import Target

from .schedule_streams import step_routing


def port_map(target: Target) -> list[dict[int, int]]:
    """Per chiplet, neighbour -> port index (ports numbered by ascending neighbour id)."""
    nbrs: list[set[int]] = [set() for _ in range(target.num_chiplets)]
    for a, b in target.edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    return [{nb: p for p, nb in enumerate(sorted(s))} for s in nbrs]


def static_steps(ctx: LayerContext, target: Target, model) -> list[tuple[StepSchedule, StepTimeline, list]]:
    """Rebuild each step's schedule from the IR (decisions) and the trace (tokens) and execute it."""
    op = ctx.schedule_op
    assert isinstance(op, StaticScheduleOp)
    trace = cached_trace(op.prop_str("trace"), model)
    pos = trace.layer_indices.index(ctx.spec.index)
    plan, ring = ctx.plan, ctx.ring
    cost = CostModel(target, ctx.spec.dtype)
    off, ex = op.prop_array("offsets"), op.prop_array("experts")
    mem, dirs, est = op.prop_array("members"), op.prop_array("directions"), op.prop_array("estimated_ns")
    out = []
    for s in range(op.prop_int("steps")):
        counts = local_tokens(step_routing(trace, pos, ctx.spec.index, s), plan, target.num_chiplets)
        streams = []
        for i in range(int(off[s]), int(off[s + 1])):
            e = int(ex[i])
            tokens = tuple(int(t) for t in counts[e])
            if sum(1 << c for c, t in enumerate(tokens) if t) != int(mem[i]):
                raise FsedpError(f"layer {ctx.spec.index} step {s}: the schedule's needing set of expert {e} "
                                 f"does not match the trace's routing; re-run schedule-streams")
            streams.append(Stream(e, int(mem[i]), int(dirs[i]), tokens))
        sched = StepSchedule(ctx.spec.index, s, tuple(streams), int(est[s]))
        trips = trajectories(sched, plan, ring)
        timeline = execute(trips, plan, ring, cost, {st.expert: st.tokens for st in streams})
        out.append((sched, timeline, trips))
    return out


def step_instructions(timeline: StepTimeline, trips, step: int, tokens: dict[int, tuple[int, ...]],
                      ports: list[dict[int, int]], n: int) -> list[list[tuple]]:
    """Per chiplet, (time, rank, opcode, unit, flags, step, expert, shard, arg) rows of one step."""
    rows: list[list[tuple]] = [[] for _ in range(n)]
    release: dict[tuple[int, int], int] = {}
    for op in timeline.ops:
        t = trips[op.trip]
        c = op.chiplet
        key = (op.trip, op.hop)
        release[key] = max(release.get(key, 0), op.end)
        if op.kind == LOAD:
            rows[c].append((op.start, 1, OPCODE["load"], op.unit, 0, step, t.expert, t.shard, t.nbytes))
        elif op.kind == SEND:
            nxt = t.path[op.hop + 1]
            flags = 1 if t.direction == CCW else 0
            rows[c].append((op.start, 2, OPCODE["send"], ports[c][nxt], flags, step, t.expert, t.shard, t.nbytes))
            rows[nxt].append((op.start, 0, OPCODE["recv"], ports[nxt][c], 0, step, t.expert, t.shard, t.nbytes))
        elif op.kind == FFN:
            rows[c].append((op.start, 3, OPCODE["ffn"], 0, 0, step, t.expert, t.shard, tokens[t.expert][c]))
    for (trip, hop), end in release.items():
        t = trips[trip]
        rows[t.path[hop]].append((end, 4, OPCODE["free"], 0, 0, step, t.expert, t.shard, 0))
    for c in range(n):
        rows[c].append((timeline.makespan, 5, OPCODE["sync"], 0, 0, step, 0, 0, 0))
        rows[c].sort(key=lambda r: (r[0], r[1], r[6], r[7]))
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
        model = module_model(op)
        ports = port_map(target)
        n = target.num_chiplets
        per_layer: dict[int, list[dict[str, np.ndarray]]] = {}
        per_layer_offsets: dict[int, list[np.ndarray]] = {}
        for lctx in layer_contexts(op):
            if not isinstance(lctx.schedule_op, StaticScheduleOp):
                raise FsedpError(f"layer {lctx.spec.index} has no static schedule; run schedule-streams{{mode=static}}")
            chip_rows: list[list[tuple]] = [[] for _ in range(n)]
            chip_offsets: list[list[int]] = [[0] for _ in range(n)]
            for sched, timeline, trips in static_steps(lctx, target, model):
                tokens = {st.expert: st.tokens for st in sched.streams}
                for c, rows in enumerate(step_instructions(timeline, trips, sched.step, tokens, ports, n)):
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


def _columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    if not rows:
        return {f: np.zeros(0, dtype=np.int64) for f, _ in FIELDS}
    arr = np.asarray([r[2:] for r in rows], dtype=np.int64)
    return {f: arr[:, i] for i, (f, _) in enumerate(FIELDS)}
