"""CP-SAT cross-check of the lightweight scheduler on one layer step (DESIGN.md §1).

The model has the step semantics of the estimator (`streaming.execute`) with the durations of
`costmodel.py`. **Exact** (as the rules and the estimator have them):

* per shard a DRAM load on its home channel, then per hop of its trip a transfer on the
  directed link (all of it arrives `busy + latency` after it starts), an FFN at every member of
  S_e once all of it has arrived, an onward transfer once its first packet has (R7, cut-through:
  `streaming.head_ns`); NoOverlap per DRAM channel, directed link and compute engine;
* R1-R3 and R5: a shard walks the virtual ring one way from its home, enters S_e at the first
  member reached, visits every member once and ends at the last (`crosscheck_trips.py`); with
  several virtual rings (R1 generalised) on the ring the stream table assigns its stream (pinned),
  the links being the union of every ring's directed links (the rings are edge-disjoint, so each
  physical directed link is one resource of one ring);
* directions: one per stream, CW, CCW, SHORT or SHORT_CCW, as the stream table describes them
  (each shard home's way follows from it, as in the scheduler's per-shard policy): a boolean
  per (stream, direction) with exactly one set, and per (stream, shard home) the way that
  home's shards walk, which the chosen direction determines;
* R6: one stream order that every DMA channel loads in (a stream's shards on a channel in
  shard order), as the stream table every chiplet holds dictates.

**Relaxed** (every run under the rules satisfies the model, so its optimum and bounds are lower
bounds and the gap an upper end): R4's admission rules (`flowcontrol.py`: an escape slot per
ring direction, a critical bubble per direction, transit-first loads) become one cumulative of
B buffers per chiplet, each held from the load (or the upstream send's start) until the later
of its FFN and its onward send, plus, where the pool has room for R4's two free slots at a load
(with every network the model may use: both directions of each ring in use, `most_networks`)
and the chiplet has one DMA channel, a one-nanosecond phantom buffer at each load's start. A
schedule the model finds may thus hold buffers the admission rules would refuse; every schedule
it is given to verify follows them. Links and compute engines may serve shards in any order
(the estimator serves the first ready): a relaxation too.

Uses:

* **evaluate/verify**: fix the heuristic's directions, stream order and the estimator's start
  times; CP-SAT must find them feasible with the same makespan; a violation names the
  constraint and its ops. Only the fixed trips are built, so this stays a fast feasibility
  check on real steps (thousands of shards);
* **gap**: directions, stream order and times free under R1-R6, hinted with a complete
  schedule under the rules, with the static bounds of `crosscheck_bounds.py` (DRAM channel,
  compute, link, one global order) on the makespan and per link as linear cuts;
* **price of virtualization**: the same step with R1-R3 dropped (any visiting order, any path,
  any entry member; `crosscheck_free.py`), measuring what the trajectory rules cost;
* **price of one global order**: the same step with R6 dropped (each DMA channel loads in its
  own order), measuring what per-chiplet injection orders would buy.

The uses and the report are in `crosscheck_report.py`. Solves run with `num_workers = 1` and a
fixed seed under a wall-clock or a deterministic limit (`cpsat.run_solver`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ortools.sat.python import cp_model

from fsedp_compiler.crosscheck.bounds import Bounds, link_head_tail, link_usage, static_bounds
from fsedp_compiler.crosscheck.cpsat import CheckResult, run_solver
from fsedp_compiler.crosscheck.trips import (Patterns, Variants, direction_patterns, entry_of, most_networks,
                                             pattern_of, variants)
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.fsedp.flowcontrol import inject_need
from fsedp_compiler.fsedp.ring import CW
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.streaming import LOAD, SEND, StepTimeline, Trip, head_ns


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


def ways_of(trips: list[Trip]) -> dict[int, dict[int, int]]:
    """Per stream, the way each home's shards walk in `trips`."""
    out: dict[int, dict[int, int]] = {}
    for t in trips:
        out.setdefault(t.stream, {})[t.path[0]] = t.direction
    return out


def _fixed_patterns(patterns: Patterns, trips: list[Trip]) -> Patterns | None:
    """Each stream's pattern restricted to the one `trips` walk; None if one is not allowed (R2)."""
    out: Patterns = []
    for si, ways in sorted(ways_of(trips).items()):
        code = pattern_of(patterns, si, ways)
        if code is None:
            return None
        out.append({code: patterns[si][code]})
    return out if len(out) == len(patterns) else None


def _directions(m: cp_model.CpModel, patterns: Patterns) -> tuple[dict[tuple[int, int], Any], dict[tuple[int, int], Any]]:
    """Per (stream, direction) a boolean, exactly one per stream; per (stream, home) whose way
    depends on it, the literal "this home's shards walk clockwise"."""
    pick: dict[tuple[int, int], Any] = {}
    cw: dict[tuple[int, int], Any] = {}
    for si, options in enumerate(patterns):
        if len(options) < 2:
            continue
        for code in options:
            pick[(si, code)] = m.NewBoolVar(f"dir_{si}_{code}")
        m.AddExactlyOne(pick[(si, code)] for code in options)
        for home in next(iter(options.values())):
            codes = [code for code, p in options.items() if p[home] == CW]
            if 0 < len(codes) < len(options):
                x = cw[(si, home)] = m.NewBoolVar(f"cw_{si}_{home}")
                m.Add(x == sum(pick[(si, code)] for code in codes))
    return pick, cw


def solve(inst: Instance, sched: StepSchedule, *, fixed: StepTimeline | None = None,
          fixed_trips: list[Trip] | None = None, hint: StepTimeline | None = None, hint_trips: list[Trip] | None = None,
          time_limit: float = 10.0, work_limit: float | None = None, global_order: bool = True,
          bounds: Bounds | None = None) -> CheckResult:
    """Build and solve the model. With `fixed` (and its trips) every direction and start time is
    pinned to the estimator's (evaluate/verify: only those trips are built); else directions,
    the stream order and times are free, with `bounds` (computed if not given) on the makespan.
    `global_order=False` drops R6: each DMA channel may load in its own order. `directions` of
    the result: per stream index the direction chosen. Limits: see `run_solver`."""
    m = cp_model.CpModel()
    cost, plan = inst.cost, inst.plan
    n = inst.ring.size
    patterns = direction_patterns(inst, sched)
    if fixed is not None and fixed_trips is not None:
        bounds = bounds or Bounds(0, 0, 0, 0)
        restricted = _fixed_patterns(patterns, fixed_trips)
        if restricted is None:  # a home walks a way no CW, CCW or SHORT stream would
            return CheckResult("INFEASIBLE", None, None, 0.0)
        patterns = restricted
    options = variants(inst, sched, patterns)
    if fixed_trips is not None and fixed is not None and any(
            getattr(options[(t.stream, t.shard)].get((t.direction, entry_of(t))), "path", None) != t.path
            for t in fixed_trips):
        # R2: not the first member reached; R1: not on the stream's ring
        return CheckResult("INFEASIBLE", None, None, 0.0)
    bounds = bounds or static_bounds(inst, sched, options, patterns)
    # horizon: everything one after another is always enough
    total = 0
    for (si, j), opts in options.items():
        t = next(iter(opts.values()))
        total += cost.dram_ns(t.nbytes) + len(inst.ring.order) * cost.link_ns(t.nbytes)
        total += sum(cost.ffn_ns(t.params, sched.streams[si].tokens[c]) for c in range(n))
    horizon = max(total, fixed.makespan if fixed is not None else 0) + 1
    pick, cw = _directions(m, patterns)
    resources: dict[tuple, list] = {}
    pools: dict[int, list] = {}
    loads: dict[tuple[int, int], list[tuple[int, int, Any, int]]] = {}
    ends: list[Any] = []
    present_ends: list[tuple[Any, Any]] = []
    starts: dict[tuple, Any] = {}
    holds: list[tuple[Any, Any, list[tuple[Any, int]], Any]] = []  # (release, size, uses, reserve)
    # R4: a load needs two slots free beyond those the networks hold whenever the pool has room
    # for them (`flowcontrol.inject_need`): a one-nanosecond phantom buffer at its start, on
    # chiplets with one DMA channel (two loads starting there at once would need only three)
    phantom = inject_need(plan.buffers, most_networks(inst, len({s.ring for s in sched.streams}))) == 2
    channels_at = Counter(c for c, _ in plan.channels)
    for (si, j), opts in options.items():
        first = next(iter(opts.values()))
        home, channel = first.path[0], first.channel
        busy_d = cost.dram_busy_ns(first.nbytes)
        ls = m.NewIntVar(0, horizon, f"load_{si}_{j}")
        starts[("load", si, j)] = ls
        resources.setdefault(("dram", home, channel), []).append(m.NewFixedSizeIntervalVar(ls, busy_d, ""))
        loads.setdefault((home, channel), []).append((si, j, ls, busy_d))
        if phantom and channels_at[home] == 1:
            pools.setdefault(home, []).append(m.NewFixedSizeIntervalVar(ls, 1, ""))
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
            x = cw.get((si, home))
            p = m.NewConstant(1) if x is None else x if vkey[0] == CW else x.Not()
            arrive = head = ls + busy_d + cost.dram_latency_ns  # a load arrives whole
            reserve = ls
            link_busy = cost.link_busy_ns(trip.nbytes)
            head_lag = head_ns(cost, trip.nbytes)
            for hop, c in enumerate(trip.path):
                uses: list[tuple[Any, int]] = []  # (start, duration) of the buffer's uses here
                if trip.computes[hop]:
                    m.Add(ffn_start[c] >= arrive).OnlyEnforceIf(p)
                    uses.append((ffn_start[c], cost.ffn_ns(trip.params, stream.tokens[c])))
                send = None
                if hop + 1 < len(trip.path):
                    send = starts[("send", si, j, vkey, hop)] = m.NewIntVar(0, horizon, f"send_{si}_{j}_{vkey}_{hop}")
                    resources.setdefault(("link", c, trip.path[hop + 1]), []).append(
                        m.NewOptionalFixedSizeIntervalVar(send, link_busy, p, ""))
                    m.Add(send >= head).OnlyEnforceIf(p)  # R7: it goes on once its first packet is here
                    uses.append((send, link_busy))
                    present_ends.append((send + link_busy, p))
                release = m.NewIntVar(0, horizon, "")
                m.AddMaxEquality(release, [s + d for s, d in uses])
                size = m.NewIntVar(0, horizon, "")
                pools.setdefault(c, []).append(m.NewOptionalIntervalVar(reserve, size, release, p, ""))
                holds.append((release, size, uses, reserve))
                if send is not None:
                    reserve = send
                    arrive = send + link_busy + cost.link_latency_ns
                    head = send + head_lag
    for ivs in resources.values():
        m.AddNoOverlap(ivs)
    for ivs in pools.values():  # R4, relaxed to its capacity (module docstring)
        m.AddCumulative(ivs, [1] * len(ivs), plan.buffers)
    pos: list[Any] = []
    before: dict[tuple[int, int], Any] = {}
    if global_order:
        pos, before = add_global_order(m, len(sched.streams), loads)
    mk = m.NewIntVar(0, horizon, "makespan")
    static_lb = bounds.best(global_order)
    m.Add(mk >= static_lb)
    for end in ends:
        m.Add(mk >= end)
    for end, p in present_ends:
        m.Add(mk >= end).OnlyEnforceIf(p)
    if fixed is None:
        _add_link_cuts(m, inst, sched, options, cw, mk)
    m.Minimize(mk)
    if fixed is not None and fixed_trips is not None:
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
        _add_hint(m, hint, hint_trips, patterns, pick, cw, pos, before, starts, holds, mk)
    solver, result = run_solver(m, mk, time_limit, work_limit)
    if result.makespan is not None:
        result.directions = {si: code for (si, code), x in pick.items() if solver.Value(x)}
        result.bound = max(result.bound or 0, static_lb) if fixed is None else result.makespan
    elif result.bound is not None:
        result.bound = max(result.bound, static_lb)
    return result


def _add_link_cuts(m: cp_model.CpModel, inst: Instance, sched: StepSchedule, options: Variants,
                   dir_var: dict[Any, Any], mk: Any) -> None:
    """Per directed link, the makespan covers its transfers back to back with the head and tail
    of `crosscheck_bounds.link_bound`: linear in the direction literals, so CP-SAT's LP sees
    which directions load which link."""
    head, tail = link_head_tail(inst, sched, options)
    terms: dict[tuple[int, int], list[Any]] = {}
    for key, opts in link_usage(inst, options).items():
        for d, per_link in opts.items():
            x = dir_var.get(key)
            for link, busy in per_link.items():
                terms.setdefault(link, []).append(busy if x is None else busy * (x if d == CW else 1 - x))
    for items in terms.values():
        m.Add(mk >= head + sum(items) + tail)


def _add_hint(m: cp_model.CpModel, hint: StepTimeline, hint_trips: list[Trip], patterns: Patterns,
              pick: dict[tuple[int, int], Any], cw: dict[tuple[int, int], Any], pos: list[Any],
              before: dict[tuple[int, int], Any], starts: dict[tuple, Any],
              holds: list[tuple[Any, Any, list[tuple[Any, int]], Any]], mk: Any) -> None:
    """A schedule under the rules as CP-SAT's starting point: its directions, stream order (the
    table's), start times and every buffer's hold. The hint is complete (the transfers of the
    trips not taken start at 0), so CP-SAT starts from it at once on real steps too, where
    completing a partial hint alone runs out of the work limit."""
    for si, ways in ways_of(hint_trips).items():
        code = pattern_of(patterns, si, ways)
        for (sj, c), x in pick.items():
            if sj == si:
                m.AddHint(x, c == code)
        for home, d in ways.items():
            if (si, home) in cw:
                m.AddHint(cw[(si, home)], d == CW)
    for si, p in enumerate(pos):
        m.AddHint(p, si)
    for x in before.values():
        m.AddHint(x, True)
    value: dict[int, int] = {}
    for op in hint.ops:
        t = hint_trips[op.trip]
        name = (("load", t.stream, t.shard) if op.kind == LOAD else
                ("send", t.stream, t.shard, (t.direction, entry_of(t)), op.hop) if op.kind == SEND else
                ("ffn", t.stream, t.shard, op.chiplet))
        if name in starts:
            value[starts[name].Index()] = op.start
    for var in starts.values():
        value.setdefault(var.Index(), 0)
        m.AddHint(var, value[var.Index()])
    for release, size, uses, reserve in holds:
        end = max(value[x.Index()] + d for x, d in uses)
        m.AddHint(release, end)
        m.AddHint(size, max(0, end - value[reserve.Index()]))
    m.AddHint(mk, hint.makespan)
