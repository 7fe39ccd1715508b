"""Task steps (the baselines) from instruction streams: ids, waits and receive pairs checked,
token counts checked against the routing, tasks built for `task_engine`.

An FFN of expert e on chiplet c must name exactly the token rows of e that reach c in the step:
c's own group of e and the groups of e it receives (`toksend e=E g=src`), or with `sets=1` c's own
group and the tokens routed to e among the whole token sets it receives (`toksend e=* g=src`).
"""

from __future__ import annotations

import numpy as np

from fsedp_compiler.isa import (
    ACC,
    ALL_EXPERTS,
    ANY_ADDR,
    ANY_UNIT,
    FFN,
    LOAD,
    NOP,
    OPS,
    RECV,
    REDUCE,
    SEND,
    TOKRECV,
    TOKSEND,
    WAIT,
)

from fsedp_compiler.sim.errors import ProgramError
from fsedp_compiler.sim.loader import Loaded
from fsedp_compiler.sim.steps import ARG, EXPERT, LAYER, N, OP, SHARD, STEP, UNIT, WIDE, X, Y, Z, Phase, Routing, _error, _ports, records, tag_text
from fsedp_compiler.sim.task_engine import Task, TaskStep

#: Opcodes whose rows may be of whole token sets (`e=*`).
WHOLE_SET_OPS = frozenset({TOKSEND, TOKRECV, REDUCE, ACC})


def decode_tasks(loaded: Loaded, phase: Phase, routing: Routing, cost) -> TaskStep:
    """A task step (the baselines): ids, waits and receive pairs checked, tasks built."""
    l, s = phase.layer, phase.step
    layer = loaded.layers.get(l)
    if layer is None or layer.baseline is None:
        raise _error(loaded, 0, phase.bounds[0][0], f"task instructions for layer {l}, which is not a baseline "
                                                    "MoE layer of this program")
    n = loaded.target.num_chiplets
    neighbour, back = _ports(loaded)
    lay = layer.layout
    spec = layer.spec
    dtype_bytes = spec.dtype_bytes
    tasks: dict[int, Task] = {}
    receives: dict[int, tuple[int, int, tuple]] = {}  # id -> (chiplet, record index, fields)
    received: dict[tuple[int, int], int] = {}  # (chiplet, expert) -> token rows arriving
    whole: list[tuple[int, int, int, int, int]] = []  # whole-set rows arriving: (chiplet, src, row, rows, record)
    ffns: list[tuple[Task, int, int]] = []
    for c in range(n):
        a = phase.bounds[c][0]
        recs = records(loaded, c, phase.bounds[c])
        waits: list[int] = []
        last = 0
        for i, r in enumerate(recs):
            op = r[OP]
            if op == NOP:
                continue

            def fail(message: str, i: int = i, c: int = c, a: int = a) -> ProgramError:
                return _error(loaded, c, a + i, message)

            mnemonic = OPS[op].mnemonic
            if op == WAIT:
                waits.append(r[N])
                continue
            if (r[LAYER], r[STEP]) != (l, s):
                raise fail(f"{mnemonic} tagged {tag_text(r[LAYER], r[STEP])} in the phase of l={l} s={s}")
            tid = r[N]
            if tid == 0:
                raise fail(f"{mnemonic} without an id in a task program")
            if tid <= last:
                raise fail(f"id {tid} after id {last}: a chiplet's tasks come in id order")
            last = tid
            if op in (RECV, TOKRECV):
                if waits:
                    raise fail("a receive does not wait; its transfer does")
                if tid in receives:
                    raise fail(f"a second receive of transfer {tid}")
                receives[tid] = (c, a + i, r)
                continue
            if tid in tasks:
                raise fail(f"id {tid} is also the id of chiplet {tasks[tid].chiplet}'s {tasks[tid].kind}")
            for w in waits:
                if w >= tid:
                    raise fail(f"waits for id {w}, which is not an earlier task (waits name earlier ids)")
            where = (c, a + i)
            e = r[EXPERT]
            if e >= layer.plan.num_streams and not (e == ALL_EXPERTS and op in WHOLE_SET_OPS):
                raise fail(f"expert {'*' if e == ALL_EXPERTS else e} does not exist in layer {l}"
                           + (f" ({mnemonic} names one expert's tile)" if e == ALL_EXPERTS else ""))
            t = Task(tid, mnemonic, c, ("control", c, 0), 0, 0, tuple(waits), e, r[SHARD], where=where)
            if op == LOAD:
                _load_task(t, r, c, lay, cost, fail, layer.plan.num_shards)
            elif op in (SEND, TOKSEND, REDUCE):
                port = r[UNIT]
                if port == ANY_UNIT:
                    raise fail(f"{mnemonic} port=* in a static program")
                t.engine = ("link", c, port)
                t.peer = neighbour[c][port]
                t.nbytes = r[ARG]
                t.busy, t.latency = cost.link_busy_ns(t.nbytes), cost.link_latency_ns
                t.holds, t.holder = t.nbytes, t.peer
                if op != SEND:
                    t.row, t.tokens = r[Y], r[Z]
                    if t.tokens == 0:
                        raise fail(f"{mnemonic} of no token rows")
                elif r[SHARD] >= layer.plan.num_shards:
                    raise fail(f"tile {r[SHARD]} does not exist ({layer.plan.num_shards} per expert)")
            elif op == FFN:
                if r[SHARD] >= layer.plan.num_shards:
                    raise fail(f"tile {r[SHARD]} does not exist ({layer.plan.num_shards} per expert)")
                t.engine = ("compute", c, 0)
                t.tokens = r[ARG]
                t.sets = bool(r[X])
                t.nbytes = int(lay.tile_bytes[e])
                t.params = t.nbytes // dtype_bytes
                t.busy = cost.ffn_ns(t.params, t.tokens)
                ffns.append((t, c, a + i))
            elif op == ACC:
                t.engine = ("compute", c, 0)
                t.row, t.tokens = r[Y], r[Z]
                t.busy = cost.dense_ns(spec.d_model, t.tokens)
            else:  # FREE of a kept tile, or a JOIN (control, no work)
                t.engine = ("control", c, 0)
            tasks[tid] = t
            waits = []
        if waits:
            raise _error(loaded, c, phase.bounds[c][1] - 1, "waits with no instruction after them")
    for tid, t in tasks.items():
        for w in t.waits:
            if w not in tasks:
                raise _error(loaded, *t.where, f"waits for id {w}, which no task of layer {l} step {s} has")
        if t.engine[0] == "link":
            rx = receives.pop(tid, None)
            want_port = back[t.chiplet][t.engine[2]]
            kind = "recv" if t.kind == "send" else "tokrecv"
            if rx is None or rx[0] != t.peer:
                raise _error(loaded, *t.where, f"chiplet {t.peer} posts no {kind} for transfer {tid}")
            rc, ri, rr = rx
            sent = (t.expert, t.shard, t.row, t.tokens, t.nbytes)
            got = (rr[EXPERT], rr[SHARD], rr[Y] if kind == "tokrecv" else 0, rr[Z] if kind == "tokrecv" else 0, rr[ARG])
            if OPS[rr[OP]].mnemonic != kind or rr[UNIT] != want_port or sent != got:
                raise _error(loaded, rc, ri, f"does not match transfer {tid} from chiplet {t.chiplet} "
                                             f"({t.kind} port {t.engine[2]}: e={t.expert} "
                                             f"{'j' if t.kind == 'send' else 'g'}={t.shard} bytes={t.nbytes})")
            if kind == "tokrecv" and t.shard < n:
                if t.expert == ALL_EXPERTS:
                    whole.append((rc, t.shard, t.row, t.tokens, ri))
                else:
                    received[(rc, t.expert)] = received.get((rc, t.expert), 0) + t.tokens
    if receives:
        tid, (rc, ri, _) = next(iter(sorted(receives.items())))
        raise _error(loaded, rc, ri, f"no transfer {tid} arrives here for this receive")
    routed = _whole_set_counts(loaded, routing, whole, n, layer.plan.num_streams) if whole else None
    for t, c, idx in ffns:
        have = routing.size(c, t.expert)
        if t.sets:
            have += int(routed[c, t.expert]) if routed is not None else 0
        else:
            have += received.get((c, t.expert), 0)
        if t.tokens != have:
            raise _error(loaded, c, idx, f"ffn on tokens={t.tokens}, but {have} token row(s) of expert {t.expert} "
                                         f"reach this chiplet in this step{' (sets=1)' if t.sets else ''}")
    return TaskStep(l, s, n, [tasks[k] for k in sorted(tasks)])


def _load_task(t: Task, r: tuple, c: int, lay, cost, fail, m: int) -> None:
    e, j, ch, addr, nbytes = r[EXPERT], r[SHARD], r[UNIT], r[WIDE], r[ARG]
    if ch == ANY_UNIT or addr == ANY_ADDR:
        raise fail("load with ch=* or addr=* in a static program")
    if j >= m:
        raise fail(f"tile {j} does not exist ({m} per expert)")
    if (int(lay.chiplet[e, j]), int(lay.channel[e, j]), int(lay.addr[e, j]), int(lay.tile_bytes[e])) != (c, ch, addr, nbytes):
        raise fail(f"the DRAM image holds tile {j} of expert {e} ({int(lay.tile_bytes[e])} bytes) on chiplet "
                   f"{int(lay.chiplet[e, j])} channel {int(lay.channel[e, j])} at {int(lay.addr[e, j]):#x}, not on "
                   f"chiplet {c} channel {ch} at {addr:#x} ({nbytes} bytes)")
    t.engine = ("dma", c, ch)
    t.nbytes = nbytes
    t.busy, t.latency = cost.dram_busy_ns(nbytes), cost.dram_latency_ns
    t.holds, t.holder = nbytes, c
    t.keep = bool(r[X])


def _whole_set_counts(loaded: Loaded, routing: Routing, whole: list[tuple[int, int, int, int, int]], n: int,
                      experts: int) -> np.ndarray:
    """[chiplet, expert]: rows of the whole token sets each chiplet receives that are routed to the
    expert (a set's rows are its chiplet's tokens in token order)."""
    tokens = len(routing.token_chiplet)
    member = np.zeros((tokens, experts), dtype=np.int64)  # token routed to expert (shared: every token)
    for groups in routing.groups:
        for e, toks in groups.items():
            member[toks, e] = 1
    local = [np.flatnonzero(routing.token_chiplet == c) for c in range(n)]
    arrived = np.zeros((n, tokens), dtype=np.int64)
    for c, src, row, rows, index in whole:
        if row + rows > len(local[src]):
            raise _error(loaded, c, index, f"receives token rows {row}..{row + rows - 1} of chiplet {src}'s token "
                                           f"set, which has {len(local[src])}")
        arrived[c, local[src][row:row + rows]] += 1
    return arrived @ member