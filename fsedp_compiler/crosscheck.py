"""CP-SAT cross-check of the lightweight scheduler on one layer step (DESIGN.md §1).

The model has the simulator's step semantics (`streaming.execute`), with the durations of
`costmodel.py`: per shard a DRAM load on its home channel; per hop of its trajectory a transfer
on the directed link (arriving `busy + latency` after it starts); an FFN at every member of S_e
once the shard has arrived; NoOverlap per DRAM channel, directed link and compute engine; per
chiplet a cumulative of B shard buffers, held from the load (or the upstream send) until the
later of its FFN and its onward send (R4's admission rules, `flowcontrol.py`, relaxed to that
capacity: every run that follows them respects it); and R6: one stream order that every DMA channel loads in (a stream's
shards on a channel in shard order), as the stream table every chiplet holds dictates. Uses:

* **evaluate/verify**: fix the heuristic's directions, stream order and the simulator's start
  times; CP-SAT must find them feasible with the same makespan; a violation names the
  constraint and its ops;
* **gap**: directions (one per shard home of each expert: CW, CCW and SHORT streams are such
  choices), stream order and times free under R1-R6, seeded with the heuristic;
* **price of virtualization**: the same step with R1-R3 dropped (any visiting order, any path,
  any entry member; `crosscheck_free.py`), measuring what the trajectory rules cost;
* **price of one global order**: the same step with R6 dropped (each DMA channel loads in its
  own order), measuring what per-chiplet injection orders would buy.

The uses and the report are in `crosscheck_report.py`. Solves run with `num_workers = 1` and a
fixed seed under a wall-clock or a deterministic limit (`run_solver`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

from .costmodel import CostModel
from .flowcontrol import min_buffers
from .ring import CCW, CW, Ring
from .scheduler import Policy, StepRouting, StepSchedule, schedule
from .shardplan import ShardPlan
from .streaming import LOAD, SEND, StepTimeline, Trip, execute, head_ns, trajectories, walk_ns

SEED = 1
WORKERS = 1


@dataclass
class Instance:
    """One layer step: the routing's streams (S_e, local tokens) on a plan, ring and cost model."""

    plan: ShardPlan
    ring: Ring
    cost: CostModel
    routing: StepRouting
    policy: Policy = field(default_factory=Policy)

    def heuristic(self) -> tuple[StepSchedule, list[Trip], StepTimeline, float]:
        start = time.perf_counter()
        sched = schedule(self.routing, self.plan, self.ring, self.cost, self.policy)
        elapsed = time.perf_counter() - start
        trips = trajectories(sched, self.plan, self.ring)
        timeline = execute(trips, self.plan, self.ring, self.cost, {s.expert: s.tokens for s in sched.streams})
        return sched, trips, timeline, elapsed


@dataclass
class CheckResult:
    status: str
    makespan: int | None
    bound: int | None
    solve_s: float
    directions: dict[Any, int] = field(default_factory=dict)


def entry_of(trip: Trip) -> int:
    """The member where a trip starts computing (R2 makes it the first member from its home)."""
    return trip.path[trip.computes.index(True)]


def trip_via(ring: Ring, base: Trip, members: int, direction: int, entry: int) -> Trip:
    """`base`'s shard walking `direction` from its home to `entry`, then every member once."""
    home = base.path[0]
    visits = ring.members_in_order(members, entry, direction)
    approach = ring.dist(home, entry, direction)
    path = tuple(ring.walk(home, approach + ring.dist(entry, visits[-1], direction), direction))
    computes = tuple(i >= approach and bool(members >> c & 1) for i, c in enumerate(path))
    return dataclasses.replace(base, direction=direction, path=path, computes=computes)


def _variants(inst: Instance, sched: StepSchedule) -> dict[tuple[int, int], dict[tuple[int, int], Trip]]:
    """Per (stream index, shard): the trips the model may choose, keyed (direction, entry): the
    expert's direction, entering at the first member reached (R2)."""
    out: dict[tuple[int, int], dict[tuple[int, int], Trip]] = {}
    n = inst.ring.size
    directions = [CW] if n < 3 or inst.plan.buffers < min_buffers(2) else [CW, CCW]  # R4: a slot per network
    for t in trajectories(sched, inst.plan, inst.ring):
        members = sched.streams[t.stream].members
        opts: dict[tuple[int, int], Trip] = {}
        for d in directions:
            entry = inst.ring.first_member(members, t.path[0], d)
            opts[(d, entry)] = trip_via(inst.ring, t, members, d, entry)
        out[(t.stream, t.shard)] = opts
    return out


def static_lower_bound(inst: Instance, sched: StepSchedule, variants: dict) -> int:
    """Single-machine relaxations CP-SAT cannot see quickly. Each DRAM channel runs its loads one
    after another, and after each load the shard still needs its shortest possible tail (DRAM
    latency, the hops to its last member, that member's FFN): the best order is largest tail
    first (Jackson's rule). Each compute engine runs its FFNs one after another, none before its
    shard can first arrive there: the best order is earliest arrival first."""
    cost, n = inst.cost, inst.ring.size
    loads: dict[tuple[int, int], list[tuple[int, int]]] = {}  # channel -> (busy, tail) per shard
    ffns: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # chiplet -> (release, duration)
    for (si, _j), opts in variants.items():
        stream = sched.streams[si]
        any_trip = next(iter(opts.values()))
        key = (any_trip.path[0], any_trip.channel)
        tail = min(cost.dram_latency_ns + walk_ns(cost, t.nbytes, len(t.path) - 1)
                   + cost.ffn_ns(t.params, stream.tokens[t.path[-1]]) for t in opts.values())
        loads.setdefault(key, []).append((cost.dram_busy_ns(any_trip.nbytes), tail))
        for c in range(n):
            if stream.members >> c & 1:
                arrive = cost.dram_ns(any_trip.nbytes) + min(
                    walk_ns(cost, t.nbytes, t.path.index(c)) for t in opts.values() if c in t.path)
                ffns[c].append((arrive, cost.ffn_ns(any_trip.params, stream.tokens[c])))
    best = 0
    for jobs in loads.values():
        clock = 0
        for busy, tail in sorted(jobs, key=lambda j: -j[1]):
            clock += busy
            best = max(best, clock + tail)
    for jobs in ffns:
        clock = 0
        for release, dur in sorted(jobs):
            clock = max(clock, release) + dur
        best = max(best, clock)
    return best


def global_order_bound(inst: Instance, sched: StepSchedule, tails: dict[tuple[int, int], dict[int, int]]) -> int:
    """R6 makes one stream the last on every DMA channel that holds it: each channel's loads run
    back to back, so that stream's shards end no earlier than their channel's total busy time
    (minus the busy of its own later shards), and then need their tails. `tails[(stream,
    shard)][direction]` is a shard's shortest tail from its load's end in that direction."""
    cost = inst.cost
    channel_busy: dict[tuple[int, int], int] = {}
    per_channel: dict[tuple[int, int], dict[int, list[int]]] = {}
    homes = inst.plan
    for si, stream in enumerate(sched.streams):
        busy = cost.dram_busy_ns(homes.shard_bytes(stream.expert))
        for j in range(homes.num_shards):
            key = homes.home(stream.expert, j)
            channel_busy[key] = channel_busy.get(key, 0) + busy
            per_channel.setdefault(key, {}).setdefault(si, []).append(j)
    best: int | None = None
    for si, stream in enumerate(sched.streams):
        busy = cost.dram_busy_ns(homes.shard_bytes(stream.expert))
        directions = set.intersection(*(set(tails[(si, j)]) for j in range(homes.num_shards)))
        last = min(max(channel_busy[key] - (len(shards) - 1 - i) * busy + tails[(si, j)][d]
                       for key, streams in per_channel.items() if si in streams
                       for shards in [streams[si]] for i, j in enumerate(shards))
                   for d in directions)
        best = last if best is None else min(best, last)
    return best or 0


def add_global_order(m: cp_model.CpModel, num_streams: int,
                     loads: dict[Any, list[tuple[int, int, Any, int]]]) -> tuple[list[Any], dict[tuple[int, int], Any]]:
    """R6: one order of the streams that every DMA channel follows (a stream's shards on a
    channel in shard order, as the stream table lists them). `loads[channel]` holds (stream,
    shard, start, busy) per load. Returns each stream's position and, per stream pair a < b, the
    literal "a comes before b"."""
    pos = [m.NewIntVar(0, max(num_streams - 1, 0), f"pos_{s}") for s in range(num_streams)]
    m.AddAllDifferent(pos)
    before: dict[tuple[int, int], Any] = {}
    for a in range(num_streams):
        for b in range(a + 1, num_streams):
            x = before[(a, b)] = m.NewBoolVar(f"before_{a}_{b}")
            m.Add(pos[a] < pos[b]).OnlyEnforceIf(x)
            m.Add(pos[a] > pos[b]).OnlyEnforceIf(x.Not())
    for items in loads.values():
        chains: dict[int, list[tuple[int, Any, int]]] = {}
        for si, j, start, busy in sorted(items, key=lambda x: (x[0], x[1])):
            chains.setdefault(si, []).append((j, start, busy))
        for chain in chains.values():
            for (_, s0, b0), (_, s1, _) in zip(chain, chain[1:]):
                m.Add(s1 >= s0 + b0)
        streams = sorted(chains)
        for ia, a in enumerate(streams):
            for b in streams[ia + 1:]:
                first_a, (_, last_a, busy_a) = chains[a][0][1], chains[a][-1]
                first_b, (_, last_b, busy_b) = chains[b][0][1], chains[b][-1]
                m.Add(first_b >= last_a + busy_a).OnlyEnforceIf(before[(a, b)])
                m.Add(first_a >= last_b + busy_b).OnlyEnforceIf(before[(a, b)].Not())
    return pos, before


def _tails(inst: Instance, sched: StepSchedule, variants: dict) -> dict[tuple[int, int], dict[int, int]]:
    """Per shard and direction, its tail under the rules: DRAM latency, the hops to its last
    member, that member's FFN (forwarding overlaps the FFNs before it)."""
    cost = inst.cost
    out: dict[tuple[int, int], dict[int, int]] = {}
    for key, opts in variants.items():
        stream = sched.streams[key[0]]
        out[key] = {d: cost.dram_latency_ns + walk_ns(cost, t.nbytes, len(t.path) - 1)
                    + cost.ffn_ns(t.params, stream.tokens[t.path[-1]]) for (d, _e), t in opts.items()}
    return out


def solve(inst: Instance, sched: StepSchedule, *, fixed: StepTimeline | None = None,
          fixed_trips: list[Trip] | None = None, hint: StepTimeline | None = None, hint_trips: list[Trip] | None = None,
          time_limit: float = 10.0, work_limit: float | None = None, global_order: bool = True) -> CheckResult:
    """Build and solve the model. With `fixed` (and its trips) every direction and start time is
    pinned to the simulator's (evaluate/verify); else directions, the stream order and times are
    free. `global_order=False` drops R6: each DMA channel may load in its own order. Limits: see
    `run_solver`."""
    m = cp_model.CpModel()
    cost, plan = inst.cost, inst.plan
    n = inst.ring.size
    variants = _variants(inst, sched)
    fixed_variant = {(t.stream, t.shard): (t.direction, entry_of(t)) for t in (fixed_trips or [])}
    # horizon: everything one after another is always enough
    total = 0
    for (si, j), opts in variants.items():
        t = next(iter(opts.values()))
        total += cost.dram_ns(t.nbytes) + len(inst.ring.order) * cost.link_ns(t.nbytes)
        total += sum(cost.ffn_ns(t.params, sched.streams[si].tokens[c]) for c in range(n))
    horizon = total + 1
    if fixed is not None:
        horizon = max(horizon, fixed.makespan + 1)
    dir_var: dict[Any, cp_model.IntVar] = {}
    lit: dict[tuple[int, int, tuple[int, int]], Any] = {}
    for (si, j), opts in variants.items():
        if len(opts) == 1:
            (only,) = opts
            lit[(si, j, only)] = m.NewConstant(1)
        else:  # one direction per shard home of an expert (CW, CCW or SHORT choose per home)
            key = (si, next(iter(opts.values())).path[0])
            if key not in dir_var:
                dir_var[key] = m.NewBoolVar(f"cw_{si}_{key[1]}")
            for v in opts:
                lit[(si, j, v)] = dir_var[key] if v[0] == CW else dir_var[key].Not()
    resources: dict[tuple, list] = {}
    pools: dict[tuple[int, int], list] = {}
    loads: dict[tuple[int, int], list[tuple[int, int, Any, int]]] = {}
    ends: list[Any] = []
    present_ends: list[tuple[Any, Any]] = []
    starts: dict[tuple, Any] = {}
    for (si, j), opts in variants.items():
        first = next(iter(opts.values()))
        home, channel = first.path[0], first.channel
        busy_d = cost.dram_busy_ns(first.nbytes)
        ls = m.NewIntVar(0, horizon, f"load_{si}_{j}")
        starts[("load", si, j)] = ls
        resources.setdefault(("dram", home, channel), []).append(m.NewFixedSizeIntervalVar(ls, busy_d, ""))
        loads.setdefault((home, channel), []).append((si, j, ls, busy_d))
        ends.append(ls + busy_d)
        ffn_start: dict[int, Any] = {}
        stream = sched.streams[si]
        for c in range(n):
            if stream.members >> c & 1:
                dur = cost.ffn_ns(first.params, stream.tokens[c])
                cs = m.NewIntVar(0, horizon, f"ffn_{si}_{j}_{c}")
                ffn_start[c] = cs
                starts[("ffn", si, j, c)] = cs
                resources.setdefault(("compute", c), []).append(m.NewFixedSizeIntervalVar(cs, dur, ""))
                ends.append(cs + dur)
        for vkey, trip in opts.items():
            p = lit[(si, j, vkey)]
            arrive = head = ls + busy_d + cost.dram_latency_ns  # a load arrives whole
            reserve = ls
            link_busy = cost.link_busy_ns(trip.nbytes)
            head_lag = head_ns(cost, trip.nbytes)
            sends: list[Any] = []
            for hop, c in enumerate(trip.path):
                release_after: list[Any] = []
                if trip.computes[hop]:
                    m.Add(ffn_start[c] >= arrive).OnlyEnforceIf(p)
                    release_after.append(ffn_start[c] + cost.ffn_ns(trip.params, stream.tokens[c]))
                if hop + 1 < len(trip.path):
                    st = m.NewIntVar(0, horizon, f"send_{si}_{j}_{vkey}_{hop}")
                    starts[("send", si, j, vkey, hop)] = st
                    resources.setdefault(("link", c, trip.path[hop + 1]), []).append(
                        m.NewOptionalFixedSizeIntervalVar(st, link_busy, p, ""))
                    m.Add(st >= head).OnlyEnforceIf(p)  # R7: it goes on once its first packet is here
                    release_after.append(st + link_busy)
                    present_ends.append((st + link_busy, p))
                    sends.append((st, p))
                rel = m.NewIntVar(0, horizon, "")
                m.AddMaxEquality(rel, release_after)
                size = m.NewIntVar(0, horizon, "")
                pools.setdefault(c, []).append(m.NewOptionalIntervalVar(reserve, size, rel, p, ""))
                if hop + 1 < len(trip.path):
                    reserve = sends[-1][0]
                    arrive = sends[-1][0] + link_busy + cost.link_latency_ns
                    head = sends[-1][0] + head_lag
    for key, ivs in resources.items():
        m.AddNoOverlap(ivs)
    # R4's escape slots and critical bubbles are admission rules of the run, not a capacity: a
    # schedule that follows them never holds more than B, so one cumulative of B per chiplet
    # is their relaxation (exact for verification, a lower bound for the gap)
    for c, ivs in pools.items():
        m.AddCumulative(ivs, [1] * len(ivs), plan.buffers)
    pos: list[Any] = []
    before: dict[tuple[int, int], Any] = {}
    static_lb = static_lower_bound(inst, sched, variants)
    if global_order:
        pos, before = add_global_order(m, len(sched.streams), loads)
        static_lb = max(static_lb, global_order_bound(inst, sched, _tails(inst, sched, variants)))
    mk = m.NewIntVar(0, horizon, "makespan")
    m.Add(mk >= static_lb)
    for end in ends:
        m.Add(mk >= end)
    for end, p in present_ends:
        m.Add(mk >= end).OnlyEnforceIf(p)
    m.Minimize(mk)
    if fixed is not None and fixed_trips is not None:
        for (si, j, v), value in lit.items():
            m.Add(value == int(fixed_variant[(si, j)] == v))
        for si, p in enumerate(pos):  # the heuristic's order is the stream table's
            m.Add(p == si)
        for op in fixed.ops:
            t = fixed_trips[op.trip]
            if op.kind == LOAD:
                m.Add(starts[("load", t.stream, t.shard)] == op.start)
            elif op.kind == SEND:
                m.Add(starts[("send", t.stream, t.shard, (t.direction, entry_of(t)), op.hop)] == op.start)
            else:
                m.Add(starts[("ffn", t.stream, t.shard, op.chiplet)] == op.start)
    elif hint is not None and hint_trips is not None:
        hinted: set = set()
        for t in hint_trips:
            key = (t.stream, t.path[0])
            if key in dir_var and key not in hinted:
                hinted.add(key)
                m.AddHint(dir_var[key], t.direction == CW)
        for si, p in enumerate(pos):
            m.AddHint(p, si)
        for x in before.values():
            m.AddHint(x, True)
        for op in hint.ops:
            t = hint_trips[op.trip]
            name = (("load", t.stream, t.shard) if op.kind == LOAD else
                    ("send", t.stream, t.shard, (t.direction, entry_of(t)), op.hop) if op.kind == SEND else
                    ("ffn", t.stream, t.shard, op.chiplet))
            if name in starts:
                m.AddHint(starts[name], op.start)
        m.AddHint(mk, hint.makespan)
    solver, result = run_solver(m, mk, time_limit, work_limit)
    if result.makespan is not None:
        result.directions = {k: int(solver.Value(v)) for k, v in dir_var.items()}
        result.bound = max(result.bound or 0, static_lb) if fixed is None else result.makespan
    elif result.bound is not None:
        result.bound = max(result.bound, static_lb)
    return result


def run_solver(m: cp_model.CpModel, mk: Any, time_limit: float,
               work_limit: float | None = None) -> tuple[cp_model.CpSolver, CheckResult]:
    """Solve with WORKERS and SEED: the status, makespan `mk` when a solution was found, the best
    bound unless infeasible, and the solve time. `time_limit` is wall-clock seconds, so a solve
    it cuts short depends on the machine's speed and load; `work_limit` replaces it with CP-SAT's
    deterministic time, which makes every result reproducible."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = WORKERS
    solver.parameters.random_seed = SEED
    if work_limit is None:
        solver.parameters.max_time_in_seconds = time_limit
    else:
        solver.parameters.max_deterministic_time = work_limit
    began = time.perf_counter()
    status = solver.Solve(m)
    elapsed = time.perf_counter() - began
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    bound = int(solver.BestObjectiveBound()) if status != cp_model.INFEASIBLE else None
    return solver, CheckResult(solver.StatusName(status), int(solver.Value(mk)) if found else None, bound, elapsed)
