"""The cross-check's uses (DESIGN.md §1): per instance, verification with the violated
constraint named, the gap under R1-R6 and, relaxed, the prices of virtualization (R1-R3) and of
one global order (R6); over many, random small instances and the summary `fsedpc crosscheck`
prints. The models are in `crosscheck.py` and `crosscheck_free.py`.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.crosscheck.bounds import balanced_directions, static_bounds
from fsedp_compiler.crosscheck.free import shortest_way, solve_free
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.crosscheck.model import solve
from fsedp_compiler.crosscheck.trips import (allowed_directions, direction_patterns, most_networks, variants,
                                             with_directions)
from fsedp_compiler.fsedp.flowcontrol import inject_need
from fsedp_compiler.fsedp.ring import SHORT, Ring
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, StepSchedule
from fsedp_compiler.fsedp.shardplan import make_shard_plan
from fsedp_compiler.fsedp.streaming import FFN, LOAD, SEND, DeadlockError, StepTimeline, Trip, head_ns


def _op_name(kind: str, t: Trip, chiplet: int, hop: int = 0) -> str:
    where = f"{chiplet}->{t.path[hop + 1]}" if kind == SEND else f"on chiplet {chiplet}"
    return f"{kind} e{t.expert}s{t.shard} {where}"


def explain_violation(inst: Instance, trips: list[Trip], timeline: StepTimeline) -> str:
    """The first model constraint a fixed schedule breaks, naming the constraint and its ops
    (same constraints as `solve`, evaluated directly on the fixed times)."""
    cost = inst.cost
    rings = inst.virtual_rings
    for op in timeline.ops:  # R1: every hop along the ring the stream table gives the stream
        t = trips[op.trip]
        if op.kind == SEND and (t.ring >= len(rings) or rings[t.ring].step(op.chiplet, t.direction) != op.unit):
            way = "clockwise" if t.direction > 0 else "counter-clockwise"
            return (f"R1 violated: {_op_name(SEND, t, op.chiplet, op.hop)} is not a {way} link of virtual "
                    f"ring {t.ring}, the stream's")
    usage: dict[tuple, list[tuple[int, int, str]]] = {}
    arrive: dict[tuple[int, int], int] = {}
    head: dict[tuple[int, int], int] = {}  # when the first packet is there (R7)
    sent: dict[tuple[int, int], int] = {}
    ffn: dict[tuple[int, int], int] = {}
    for op in timeline.ops:
        t = trips[op.trip]
        name = _op_name(op.kind, t, op.chiplet, op.hop)
        if op.kind == LOAD:
            usage.setdefault(("DRAM channel", op.chiplet, op.unit), []).append((op.start, op.end, name))
            arrive[(op.trip, 0)] = head[(op.trip, 0)] = op.end + cost.dram_latency_ns
        elif op.kind == SEND:
            usage.setdefault(("link", op.chiplet, op.unit), []).append((op.start, op.end, name))
            sent[(op.trip, op.hop)] = op.start
            arrive[(op.trip, op.hop + 1)] = op.end + cost.link_latency_ns
            head[(op.trip, op.hop + 1)] = op.start + head_ns(cost, trips[op.trip].nbytes)  # R7
        else:
            usage.setdefault(("compute", op.chiplet), []).append((op.start, op.end, name))
            ffn[(op.trip, op.hop)] = op.start
    for key, spans in sorted(usage.items()):
        spans.sort()
        for (s0, e0, a), (s1, _e1, b_) in zip(spans, spans[1:]):
            if s1 < e0:
                return f"NoOverlap on {key[0]} {key[1:]} violated: {a} [{s0}, {e0}) overlaps {b_} starting at {s1}"
    loads = sorted((op.chiplet, op.unit, op.start, trips[op.trip].stream, trips[op.trip].shard, op.trip)
                   for op in timeline.ops if op.kind == LOAD)
    for (c0, u0, _s0, st0, j0, a), (c1, u1, s1, st1, j1, b_) in zip(loads, loads[1:]):
        if (c0, u0) == (c1, u1) and (st1, j1) < (st0, j0):
            return (f"R6 (one global order) violated on DRAM channel {(c0, u0)}: {_op_name(LOAD, trips[b_], c1)} "
                    f"of stream {st1} starts at {s1}, after {_op_name(LOAD, trips[a], c0)} of stream {st0}")
    for (trip, hop), start in sorted(sent.items()):
        if (trip, hop) not in head or start < head[(trip, hop)]:
            t = trips[trip]
            return (f"precedence violated: {_op_name(SEND, t, t.path[hop], hop)} starts at {start} before the shard's "
                    f"first packet arrives at {head.get((trip, hop), 'never')}")
    for (trip, hop), start in sorted(ffn.items()):
        if (trip, hop) not in arrive or start < arrive[(trip, hop)]:
            t = trips[trip]
            return (f"precedence violated: {_op_name(FFN, t, t.path[hop])} starts at {start} before the shard "
                    f"arrives at {arrive.get((trip, hop), 'never')}")
    holds: dict[int, list[tuple[int, int]]] = {}
    ends_at: dict[tuple[int, int], list[int]] = {}
    for op in timeline.ops:
        if op.kind in (SEND, FFN):
            ends_at.setdefault((op.trip, op.hop), []).append(op.end)
    for t in trips:
        reserve = next(op.start for op in timeline.ops if op.kind == LOAD and op.trip == t.seq)
        for hop, c in enumerate(t.path):
            release = max(ends_at.get((t.seq, hop), [reserve]))
            holds.setdefault(c, []).append((reserve, release))
            if (t.seq, hop) in sent:
                reserve = sent[(t.seq, hop)]
    for c, spans in sorted(holds.items()):
        points = sorted({s for s, _ in spans})
        for p in points:
            level = sum(1 for s, e in spans if s <= p < e)
            if level > inst.plan.buffers:
                return (f"cumulative SRAM buffers of chiplet {c} (capacity {inst.plan.buffers}) exceeded at t={p}: "
                        f"{level} held")
    if inject_need(inst.plan.buffers, most_networks(inst, len({t.ring for t in trips}))) == 2:
        channels_at = Counter(c for c, _ in inst.plan.channels)
        for op in timeline.ops:
            if op.kind == LOAD and channels_at[op.chiplet] == 1:
                level = sum(1 for s, e in holds[op.chiplet] if s <= op.start < e)
                if level + 1 > inst.plan.buffers:
                    return (f"R4 violated: {_op_name(LOAD, trips[op.trip], op.chiplet)} starts at {op.start} with "
                            f"{inst.plan.buffers - level + 1} of chiplet {op.chiplet}'s {inst.plan.buffers} buffers "
                            f"free, not two")
    return "no violation found by the direct check"


def alternatives(inst: Instance, sched: StepSchedule, balanced: dict[int, int]) -> dict[str, tuple[list[Trip], StepTimeline]]:
    """Two other schedules the stream table can describe, run by the estimator under R4's
    admission rules: every stream SHORT, and the directions that least load the busiest link
    (`crosscheck_bounds.balanced_directions`); the heuristic's stream order in both. A start
    for CP-SAT and a check on the heuristic's choice of directions."""
    out: dict[str, tuple[list[Trip], StepTimeline]] = {}
    ways = {"short": {i: SHORT for i in range(len(sched.streams))}, "balanced": balanced}
    for name, directions in ways.items():
        if not directions or len(allowed_directions(inst)) < 2:
            continue
        try:
            out[name] = inst.run(with_directions(sched, directions))
        except DeadlockError:  # the rules exclude it; a what-if is not worth failing the check for
            pass
    return out


def crosscheck(inst: Instance, *, time_limit: float = 10.0, work_limit: float | None = None,
               relaxed: bool = True) -> dict[str, Any]:
    """Heuristic vs CP-SAT on one instance: verification, gap and (with `relaxed`) the prices of
    virtualization (R1-R3) and of one global order (R6), as the JSON fields of `fsedpc crosscheck`."""
    sched, trips, timeline, heuristic_s = inst.heuristic()
    limits = {"time_limit": time_limit, "work_limit": work_limit}
    began = time.perf_counter()
    evaluated = solve(inst, sched, fixed=timeline, fixed_trips=trips, **limits)
    verified = evaluated.status in ("OPTIMAL", "FEASIBLE") and evaluated.makespan == timeline.makespan
    row: dict[str, Any] = {"heuristic_ns": timeline.makespan, "verified": verified, "heuristic_s": heuristic_s,
                           "streams": len(sched.streams), "shards": len(trips),
                           "transfers": sum(len(t.path) - 1 for t in trips),
                           "verify_s": time.perf_counter() - began}
    if not verified:
        row["violation"] = explain_violation(inst, trips, timeline)
    began = time.perf_counter()
    patterns = direction_patterns(inst, sched)
    options = variants(inst, sched, patterns)
    balanced = balanced_directions(inst, sched, options, patterns)
    bounds = static_bounds(inst, sched, options, patterns, balanced=balanced)
    # the alternatives start CP-SAT where they beat the heuristic; each is verified like it
    start = (trips, timeline)
    row["alternatives_ns"] = {}
    for name, (alt_trips, alt) in alternatives(inst, sched, balanced[1]).items():
        check = solve(inst, sched, fixed=alt, fixed_trips=alt_trips, **limits)
        ok = check.status in ("OPTIMAL", "FEASIBLE") and check.makespan == alt.makespan
        row["alternatives_ns"][name] = alt.makespan if ok else None
        if ok and alt.makespan < start[1].makespan:
            start = (alt_trips, alt)
    best = solve(inst, sched, hint=start[1], hint_trips=start[0], bounds=bounds, **limits)
    found = min(x for x in (best.makespan, start[1].makespan) if x is not None)
    row.update(status=best.status, optimum_ns=best.makespan if best.status == "OPTIMAL" else None,
               best_ns=found, bound_ns=best.bound, bounds=bounds.as_dict())
    reference = row["optimum_ns"] or best.bound or found
    row["gap"] = timeline.makespan / reference - 1 if reference else 0.0
    row["gap_to_best"] = timeline.makespan / found - 1
    if relaxed:
        # a solution under the rules is one of the free model's, and so is the shortest-way
        # schedule: the better of them is the hint and caps the free best
        witness = shortest_way(inst, sched)
        hint_tr, hint_tl = witness if witness and witness[1].makespan < start[1].makespan else start
        free = solve_free(inst, sched, hint=hint_tl, hint_trips=hint_tr, **limits)
        # short of a proved optimum the price is a lower estimate, the bound gives its upper end
        relaxed_ns = min(x for x in (free.makespan, found, witness and witness[1].makespan) if x)
        row.update(relaxed_ns=relaxed_ns, relaxed_status=free.status, relaxed_bound_ns=free.bound,
                   price_of_virtualization=found / relaxed_ns - 1 if relaxed_ns else 0.0,
                   price_of_virtualization_max=(found / free.bound - 1 if free.bound else None))
        # R6 dropped: per-channel load orders; the same reading (lower estimate, bound for the upper end)
        anyorder = solve(inst, sched, hint=start[1], hint_trips=start[0], bounds=bounds, **limits,
                         global_order=False)
        any_ns = min(x for x in (anyorder.makespan, found) if x is not None)
        row.update(any_order_ns=any_ns, any_order_status=anyorder.status, any_order_bound_ns=anyorder.bound,
                   price_of_global_order=found / any_ns - 1 if any_ns else 0.0,
                   price_of_global_order_max=(found / anyorder.bound - 1 if anyorder.bound else None))
    row["solver_s"] = time.perf_counter() - began
    return row


def random_instances(layer, target, count: int, seed: int, *, shards_per_chiplet: int = 1, buffers: int = 6,
                     max_tokens_per_chiplet: int = 3, policy: Policy = Policy()) -> list[Instance]:
    """`count` random small routings of `layer` on `target`: 1..max tokens on each chiplet,
    each picking top-k distinct experts uniformly."""
    plan = make_shard_plan(layer, target, shards_per_chiplet, buffers)
    ring, cost = Ring(target.ring), CostModel(target, layer.dtype)
    rings = (ring, *(Ring(r) for r in target.rings[1:]))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        per_chiplet = rng.integers(1, max_tokens_per_chiplet + 1, target.num_chiplets)
        chiplet = np.repeat(np.arange(target.num_chiplets), per_chiplet).astype(np.int32)
        experts = np.array([rng.choice(layer.num_experts, layer.top_k, replace=False) for _ in chiplet], dtype=np.int32)
        weights = np.full(experts.shape, 1.0 / layer.top_k, dtype=np.float32)
        out.append(Instance(plan, ring, cost, StepRouting(experts, weights, chiplet), policy, rings))
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and max gap (to the optimum or bound: an upper end; to the best found: a lower
    end), prices of virtualization and of one global order, solver vs heuristic time."""
    gaps = [r["gap"] for r in rows]
    to_best = [r["gap_to_best"] for r in rows]
    prices = [r["price_of_virtualization"] for r in rows if "price_of_virtualization" in r]
    order_prices = [r["price_of_global_order"] for r in rows if "price_of_global_order" in r]
    return {
        "median_gap": statistics.median(gaps) if gaps else None,
        "max_gap": max(gaps) if gaps else None,
        "median_gap_to_best": statistics.median(to_best) if to_best else None,
        "max_gap_to_best": max(to_best) if to_best else None,
        "median_price_of_virtualization": statistics.median(prices) if prices else None,
        "median_price_of_global_order": statistics.median(order_prices) if order_prices else None,
        "all_verified": all(r["verified"] for r in rows),
        "median_solver_s": statistics.median([r["solver_s"] for r in rows]) if rows else None,
        "median_heuristic_s": statistics.median([r["heuristic_s"] for r in rows]) if rows else None,
    }

