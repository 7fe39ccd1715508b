"""A layer's static schedule read back from the IR (`fsedp.static_schedule`): per step as the
scheduler's `StepSchedule`s, as numpy arrays over all streams, and a step's stream table as IR
rows. Shared by expand-dataflow, emit-isa's stream tables and the estimator.
"""

from __future__ import annotations

import numpy as np

from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW
from fsedp_compiler.fsedp.scheduler import Stream, StepSchedule
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.ir.expand_columns import LayerSchedule
from fsedp_compiler.ir.layers import LayerContext
from fsedp_compiler.ir.rows import stream_rows

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


def layer_schedule(ctx: LayerContext, n: int, steps: range | None = None) -> LayerSchedule:
    """The layer's static schedule as arrays (one row per stream): all steps, or only the streams
    of `steps` (their step numbers kept; `steps` of the result stays the schedule's count)."""
    op = ctx.schedule_op
    assert isinstance(op, StaticScheduleOp)
    off = op.prop_array("offsets").astype(np.int64)
    moff = op.prop_array("member_offsets").astype(np.int64)
    total = op.prop_int("steps")
    lo_step, hi_step = (0, total) if steps is None else (steps.start, min(steps.stop, total))
    lo, hi = int(off[lo_step]), int(off[hi_step])
    m_lo, m_hi = int(moff[lo]), int(moff[hi])
    streams = hi - lo
    tokens = np.zeros((streams, n), dtype=np.int64)
    tokens[np.repeat(np.arange(streams), np.diff(moff[lo:hi + 1])), op.prop_array("members")[m_lo:m_hi]] = \
        op.prop_array("tokens")[m_lo:m_hi]
    step = np.repeat(np.arange(lo_step, hi_step, dtype=np.int64), np.diff(off[lo_step:hi_step + 1]))
    return LayerSchedule(total, step, op.prop_array("experts")[lo:hi].astype(np.int64),
                         op.prop_array("directions")[lo:hi].astype(np.int64),
                         op.prop_array("rings")[lo:hi].astype(np.int64), tokens)


def step_table_rows(sched: StepSchedule) -> list[tuple[int, ...]]:
    """One step's stream table as IR rows (STREAM rows in R6 order, MASK continuations)."""
    return [r for st in sched.streams for r in stream_rows(sched.step, st.expert, _DIR_BIT[st.direction], st.members,
                                                            st.ring)]
