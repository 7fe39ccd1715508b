"""The cross-check's model without the virtualization rules R1-R3: the price of virtualization.

Under the rules a shard walks the virtual ring in its expert's direction, enters S_e at the first
member it reaches and visits the members in ring order. Here each shard, once loaded from its
DRAM home, visits the members of S_e in **any order** (a circuit over home and members,
`AddCircuit`), over **any path** between consecutive stops (each hop is a link transfer; the
candidate paths are the two ways round the virtual ring, which on the cycle topologies the
cross-check runs on -- a ring, a 2x2 mesh -- are all simple paths; with several virtual rings,
R1 generalised, the two ways round each of them), and may enter S_e at **any member**.
Everything else is the constrained model's (`crosscheck.solve`): the cost model's durations,
NoOverlap per DRAM channel, directed link and compute engine, cut-through forwarding (R7: a
shard goes on once its first packet has arrived), B buffers per chiplet held from a
transfer's start to the shard's last use there (R4's admission rules relaxed to that capacity),
and R6's one stream order that every DMA channel follows.

A schedule under the rules is a solution of this model, so its optimum is never worse; the hint
is the better of the heuristic's schedule and `shortest_way`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ortools.sat.python import cp_model

from fsedp_compiler.crosscheck.bounds import global_order_bound
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.crosscheck.cpsat import CheckResult, run_solver
from fsedp_compiler.crosscheck.model import add_global_order
from fsedp_compiler.crosscheck.trips import trip_via
from fsedp_compiler.fsedp.ring import CCW, CW, Ring
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.streaming import FFN, LOAD, SEND, DeadlockError, StepTimeline, Trip, execute, head_ns, trajectories, walk_ns

HOME = -1
"""The circuit's depot node: the shard at its DRAM home before its first stop."""


def _paths(inst: Instance, src: int, dst: int) -> list[tuple[int, ...]]:
    """Candidate paths src -> dst (chiplets, both ends included): the two ways round each virtual
    ring (R1's first)."""
    if src == dst:
        return [(src,)]
    out: list[tuple[int, ...]] = []
    for ring in inst.virtual_rings:
        for d in (CW, CCW):
            p = tuple(ring.walk(src, ring.dist(src, dst, d), d))
            if p not in out:
                out.append(p)
    return out


def solve_free(inst: Instance, sched: StepSchedule, *, hint: StepTimeline | None = None,
               hint_trips: list[Trip] | None = None, time_limit: float = 10.0, work_limit: float | None = None,
               pin: bool = False) -> CheckResult:
    """Minimise the step's makespan with R1-R3 dropped (module docstring); R6's one stream order
    on every DMA channel is kept, so the difference is what the trajectory rules cost. With `pin`
    the hint's visiting orders, paths and start times are constraints (is it a solution?)."""
    m = cp_model.CpModel()
    cost, plan, n = inst.cost, inst.plan, inst.ring.size
    trips = trajectories(sched, plan, inst.virtual_rings)
    horizon = 1 + sum(cost.dram_ns(t.nbytes) + n * n * cost.link_ns(t.nbytes)
                      + sum(cost.ffn_ns(t.params, tok) for tok in sched.streams[t.stream].tokens) for t in trips)
    resources: dict[tuple, list[Any]] = {}
    holds: dict[int, list[Any]] = {}
    loads: dict[tuple[int, int], list[tuple[int, int, Any, int]]] = {}
    ends: list[Any] = []
    names: dict[tuple, Any] = {}  # hint keys -> start variables
    arc_lits: dict[tuple, Any] = {}
    for t in trips:
        stream = sched.streams[t.stream]
        members = [c for c in range(n) if stream.members >> c & 1]
        home, key = t.path[0], (t.stream, t.shard)
        busy_d, busy_l = cost.dram_busy_ns(t.nbytes), cost.link_busy_ns(t.nbytes)
        hop_ns = busy_l + cost.link_latency_ns
        head_lag = head_ns(cost, t.nbytes)  # R7: a shard goes on once its first packet is there
        ls = m.NewIntVar(0, horizon, "")
        names[("load", *key)] = ls
        resources.setdefault(("dram", home, t.channel), []).append(m.NewFixedSizeIntervalVar(ls, busy_d, ""))
        loads.setdefault((home, t.channel), []).append((t.stream, t.shard, ls, busy_d))
        holds.setdefault(home, [])
        ends.append(ls + busy_d)
        ready = ls + busy_d + cost.dram_latency_ns
        arrive = {c: m.NewIntVar(0, horizon, "") for c in members}
        head = {c: m.NewIntVar(0, horizon, "") for c in members}
        reserve = {c: m.NewIntVar(0, horizon, "") for c in members}
        release = {c: m.NewIntVar(0, horizon, "") for c in members}
        home_release = m.NewIntVar(0, horizon, "")
        for c in members:
            dur = cost.ffn_ns(t.params, stream.tokens[c])
            fs = m.NewIntVar(0, horizon, "")
            names[("ffn", *key, c)] = fs
            m.Add(fs >= arrive[c])
            m.Add(release[c] >= fs + dur)
            resources.setdefault(("compute", c), []).append(m.NewFixedSizeIntervalVar(fs, dur, ""))
            ends.append(fs + dur)
            size = m.NewIntVar(0, horizon, "")
            holds.setdefault(c, []).append(m.NewIntervalVar(reserve[c], size, release[c], ""))
        arcs: list[tuple[int, int, Any]] = []
        nodes = {HOME: 0, **{c: i + 1 for i, c in enumerate(members)}}
        for a in (HOME, *members):
            for b in (*members, HOME):
                if a == b:
                    continue
                lit = m.NewBoolVar("")
                arcs.append((nodes[a], nodes[b], lit))
                arc_lits[(*key, a, b)] = lit
                if b == HOME:  # the shard's last stop: nothing moves
                    continue
                src = home if a == HOME else a
                options = _paths(inst, src, b)
                chosen = [m.NewBoolVar("") for _ in options]
                m.Add(sum(chosen) == lit)
                for p, (path, x) in enumerate(zip(options, chosen)):
                    names[("path", *key, a, b, p)] = x
                    depart = ready if a == HOME else head[a]
                    if len(path) == 1:  # b is the home: the shard is there once loaded
                        m.Add(arrive[b] == ready).OnlyEnforceIf(x)
                        m.Add(head[b] == ready).OnlyEnforceIf(x)
                        m.Add(reserve[b] == ls).OnlyEnforceIf(x)
                        continue
                    starts = []
                    for hop, (u, v) in enumerate(zip(path, path[1:])):
                        s = m.NewIntVar(0, horizon, "")
                        names[("send", *key, a, b, p, hop)] = s
                        resources.setdefault(("link", u, v), []).append(
                            m.NewOptionalFixedSizeIntervalVar(s, busy_l, x, ""))
                        m.Add(s >= (depart if hop == 0 else starts[-1] + head_lag)).OnlyEnforceIf(x)
                        _optional_end(m, horizon, ends, s + busy_l, x)
                        if hop:  # a pass-through chiplet holds it from its arrival until it has gone on
                            holds.setdefault(u, []).append(
                                m.NewOptionalIntervalVar(starts[-1], m.NewIntVar(0, horizon, ""), s + busy_l, x, ""))
                        starts.append(s)
                    m.Add(arrive[b] == starts[-1] + hop_ns).OnlyEnforceIf(x)
                    m.Add(head[b] == starts[-1] + head_lag).OnlyEnforceIf(x)
                    m.Add(reserve[b] == starts[-1]).OnlyEnforceIf(x)
                    if a == HOME:
                        m.Add(home_release >= starts[0] + busy_l).OnlyEnforceIf(x)
                    else:
                        m.Add(release[a] >= starts[0] + busy_l).OnlyEnforceIf(x)
        m.AddCircuit(arcs)
        # the home holds the shard from its load until it leaves, unless the home is its first stop
        leaves_home = m.NewBoolVar("")
        if home in members:
            m.Add(leaves_home == arc_lits[(*key, HOME, home)].Not())
        else:
            m.Add(leaves_home == 1)
        holds[home].append(m.NewOptionalIntervalVar(ls, m.NewIntVar(0, horizon, ""), home_release, leaves_home, ""))
    for ivs in resources.values():
        m.AddNoOverlap(ivs)
    for ivs in holds.values():
        m.AddCumulative(ivs, [1] * len(ivs), plan.buffers)
    pos, before = add_global_order(m, len(sched.streams), loads)
    mk = m.NewIntVar(0, horizon, "makespan")
    static_lb = free_lower_bound(inst, sched, trips)
    m.Add(mk >= static_lb)
    for end in ends:
        m.Add(mk >= end)
    m.Minimize(mk)
    if hint is not None and hint_trips is not None:
        _add_hint(m, inst, hint, hint_trips, names, arc_lits, mk)
        for si, p in enumerate(pos):
            m.AddHint(p, si)
        for x in before.values():
            m.AddHint(x, True)
        if pin:
            hinted = m.Proto().solution_hint
            for index, value in zip(list(hinted.vars), list(hinted.values)):
                m.Add(m.GetIntVarFromProtoIndex(index) == value)
    result = run_solver(m, mk, time_limit, work_limit)[1]
    if result.status != "INFEASIBLE":  # short of presolve the solver reports 0: keep the static bound
        result.bound = max(result.bound or 0, static_lb)
    return result


def shortest_way(inst: Instance, sched: StepSchedule) -> tuple[list[Trip], StepTimeline] | None:
    """A schedule without R2's one direction per expert: every shard walks whichever way round
    reaches its last member sooner (the stream order, entries and visiting order otherwise as the
    rules make them), run by the simulator's engines with one pool of B buffers for both
    directions. It satisfies the free model, so it is a witness for the price of virtualization
    where CP-SAT finds nothing within the time limit. None if the shared pool deadlocks."""
    if inst.ring.size < 3:
        return None
    trips = []
    for t in trajectories(sched, inst.plan, inst.virtual_rings):
        members = sched.streams[t.stream].members
        ring = inst.ring_of(sched.streams[t.stream])
        ways = [trip_via(ring, t, members, d, ring.first_member(members, t.path[0], d))
                for d in (t.direction, -t.direction)]
        trips.append(min(ways, key=lambda w: len(w.path)))
    trips = [dataclasses.replace(t, seq=i) for i, t in enumerate(trips)]
    try:
        timeline = execute(trips, inst.plan, inst.ring, inst.cost, {s.expert: s.tokens for s in sched.streams},
                           shared_pool=True)
    except DeadlockError:
        return None
    return trips, timeline


def free_lower_bound(inst: Instance, sched: StepSchedule, trips: list[Trip]) -> int:
    """Bounds that hold whatever the visiting order and paths: each DRAM channel's loads back to back, then
    the cheapest tail of the last one (latency, and an FFN at some member, after a hop unless the
    home is one); each compute engine's FFNs after the earliest any shard can arrive."""
    cost, n = inst.cost, inst.ring.size
    busy: dict[tuple[int, int], int] = {}
    tail: dict[tuple[int, int], int] = {}
    ffn_total = [0] * n
    for t in trips:
        stream = sched.streams[t.stream]
        key = (t.path[0], t.channel)
        busy[key] = busy.get(key, 0) + cost.dram_busy_ns(t.nbytes)
        hop = walk_ns(cost, t.nbytes, 1)
        shard_tail = cost.dram_latency_ns + min(
            cost.ffn_ns(t.params, stream.tokens[c]) + (0 if c == t.path[0] else hop)
            for c in range(n) if stream.members >> c & 1)
        tail[key] = min(tail.get(key, shard_tail), shard_tail)
        for c in range(n):
            if stream.members >> c & 1:
                ffn_total[c] += cost.ffn_ns(t.params, stream.tokens[c])
    first = min((cost.dram_ns(t.nbytes) for t in trips), default=0)
    # R6 still holds: the last stream's shards end after their channels' loads, then each needs
    # the shortest walk over its members and an FFN at the last one
    tails = {}
    for t in trips:
        stream = sched.streams[t.stream]
        members = [c for c in range(n) if stream.members >> c & 1]
        # several rings: a walk may change rings between stops, so only one hop per other member
        hops = (cover_hops(inst.ring, t.path[0], members) if len(inst.virtual_rings) == 1
                else len(set(members) - {t.path[0]}))
        tails[(t.stream, t.shard)] = {0: cost.dram_latency_ns + walk_ns(cost, t.nbytes, hops)
                                      + min(cost.ffn_ns(t.params, stream.tokens[c]) for c in members)}
    return max(max((busy[k] + tail[k] for k in busy), default=0), max(ffn_total, default=0) + first,
               global_order_bound(inst, sched, tails))


def cover_hops(ring: Ring, home: int, members: list[int]) -> int:
    """The fewest hops of a walk on the ring from `home` through every member: it covers an arc
    that skips one gap between consecutive stops, going first to the nearer end of that arc."""
    n = ring.size
    points = sorted({ring.pos(home), *(ring.pos(c) for c in members)})
    if len(points) == 1:
        return 0
    h = ring.pos(home)
    best = n * n
    for a, b in zip(points, points[1:] + points[:1]):
        arc = n - (b - a) % n  # from b round to a, skipping the gap a -> b
        x = (h - b) % n
        best = min(best, arc + min(x, arc - x))
    return best


def _optional_end(m: cp_model.CpModel, horizon: int, ends: list[Any], expr: Any, present: Any) -> None:
    """Record an optional end time for the makespan (0 when the transfer is not chosen)."""
    e = m.NewIntVar(0, horizon, "")
    m.Add(e == expr).OnlyEnforceIf(present)
    m.Add(e == 0).OnlyEnforceIf(present.Not())
    ends.append(e)


def _add_hint(m: cp_model.CpModel, inst: Instance, hint: StepTimeline, trips: list[Trip], names: dict,
              arc_lits: dict, mk: Any) -> None:
    """The heuristic's schedule in this model's terms: its visiting order, ring paths and times."""
    sends = {(op.trip, op.hop): op.start for op in hint.ops if op.kind == SEND}
    for op in hint.ops:
        t = trips[op.trip]
        if op.kind == LOAD:
            m.AddHint(names[("load", t.stream, t.shard)], op.start)
        elif op.kind == FFN:
            m.AddHint(names[("ffn", t.stream, t.shard, op.chiplet)], op.start)
    for t in trips:
        stops = [c for c, k in zip(t.path, t.computes) if k]
        order = [HOME, *stops, HOME]
        chosen = set(zip(order, order[1:]))
        for (si, j, a, b), lit in arc_lits.items():
            if (si, j) == (t.stream, t.shard):
                m.AddHint(lit, (a, b) in chosen)
                if (a, b) not in chosen:
                    for q in range(2 * len(inst.virtual_rings)):
                        if ("path", si, j, a, b, q) in names:
                            m.AddHint(names[("path", si, j, a, b, q)], False)
        # hops of the trip between consecutive stops, along its direction
        index = {c: i for i, c in enumerate(t.path) if t.computes[i]}
        prev_i = 0
        for a, b in zip(order, order[1:-1]):
            b_i = index[b]
            segment = t.path[prev_i:b_i + 1]
            options = _paths(inst, t.path[0] if a == HOME else a, b)
            for q in range(len(options)):
                m.AddHint(names[("path", t.stream, t.shard, a, b, q)], options[q] == segment)
            if segment in options:
                p = options.index(segment)
                for hop in range(len(segment) - 1):
                    key = ("send", t.stream, t.shard, a, b, p, hop)
                    if key in names and (t.seq, prev_i + hop) in sends:
                        m.AddHint(names[key], sends[(t.seq, prev_i + hop)])
            prev_i = b_i
    m.AddHint(mk, hint.makespan)
