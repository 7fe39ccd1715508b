"""CP-SAT cross-check on several virtual rings (R1 generalised): torus-4x4's two edge-disjoint
Hamiltonian cycles. The instance carries every ring, the heuristic is `fsedp`'s own schedule
(streams on both rings), the model verifies it exactly, names a hop off its stream's ring, and
its relaxations and bounds stay below the schedules under the rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.crosscheck.model import solve
from fsedp_compiler.crosscheck.report import explain_violation, random_instances
from fsedp_compiler.crosscheck.trips import direction_patterns, variants
from fsedp_compiler.fsedp.ring import Ring, directed_routes
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, schedule
from fsedp_compiler.fsedp.shardplan import make_shard_plan
from fsedp_compiler.fsedp.streaming import SEND
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target_files import load_preset

REPO = Path(__file__).resolve().parent.parent
LAYER = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=8, top_k=2)
SMALL = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=1)


def _torus(count: int, seed: int, **kw):
    # B = 12: the second ring's networks need that much pool (`schedbalance.rings_fit`)
    return random_instances(LAYER, load_preset("torus-4x4"), count, seed, **{"buffers": 12, **kw})


def _ring_links(ring: Ring) -> set[tuple[int, int]]:
    return {(c, ring.step(c, d)) for c in ring.order for d in (1, -1)}


def test_instances_carry_every_ring_and_the_heuristic_uses_them() -> None:
    """The instance holds the target's rings (R1's first) and schedules with all of them, as
    `fsedpc compile` does: `fsedp`'s schedule, not `fsedp-onering`'s; each trip walks the links
    of its stream's ring."""
    target = load_preset("torus-4x4")
    assert len(target.rings) == 2
    seen = set()
    for inst in _torus(3, 1):
        assert [r.order for r in inst.virtual_rings] == [tuple(r) for r in target.rings]
        sched, trips, _, _ = inst.heuristic()
        assert sched == schedule(inst.routing, inst.plan, [Ring(r) for r in target.rings], inst.cost)
        seen |= {s.ring for s in sched.streams}
        for t in trips:
            assert t.ring == sched.streams[t.stream].ring
            assert set(zip(t.path, t.path[1:])) <= _ring_links(inst.virtual_rings[t.ring])
    assert seen == {0, 1}
    # `rings one` keeps R1's ring alone
    one = dataclasses.replace(_torus(1, 1)[0], policy=Policy(rings="one"))
    assert [r.order for r in one.virtual_rings] == [target.ring]
    assert {s.ring for s in one.heuristic()[0].streams} == {0}


def test_patterns_and_trips_follow_the_streams_ring() -> None:
    """Directions stay free within the stream's ring: CW, CCW, SHORT and SHORT_CCW as
    `ring.directed_routes` has them on that ring, every variant on its links."""
    inst = _torus(1, 2)[0]
    sched = inst.heuristic()[0]
    patterns = direction_patterns(inst, sched)
    for stream, options in zip(sched.streams, patterns):
        ring = inst.virtual_rings[stream.ring]
        for d, ways in options.items():
            assert ways == {h: directed_routes(ring, stream.members, d)[0][h] for h in ways}
    for (si, _j), opts in variants(inst, sched, patterns).items():
        links = _ring_links(inst.virtual_rings[sched.streams[si].ring])
        for t in opts.values():
            assert set(zip(t.path, t.path[1:])) <= links


def test_random_torus_steps_are_verified() -> None:
    """Random tiny steps on torus-4x4: CP-SAT finds the heuristic's directions, rings, order and
    start times feasible with the estimator's makespan."""
    for inst in _torus(3, 3, max_tokens_per_chiplet=2):
        sched, trips, timeline, _ = inst.heuristic()
        assert len({s.ring for s in sched.streams}) == 2
        result = solve(inst, sched, fixed=timeline, fixed_trips=trips, time_limit=30)
        assert (result.status, result.makespan) == ("OPTIMAL", timeline.makespan)
        assert explain_violation(inst, trips, timeline) == "no violation found by the direct check"


def test_a_trip_off_its_streams_ring_is_rejected_and_named() -> None:
    """A stream's shards walking R1's ring while the table puts the stream on ring 1 is no
    schedule of that table: the model refuses it, the direct check names R1 and the send."""
    inst = _torus(1, 4)[0]
    sched, _trips, _timeline, _ = inst.heuristic()
    si = next(i for i, s in enumerate(sched.streams) if s.ring == 1)
    moved = dataclasses.replace(sched, streams=tuple(
        dataclasses.replace(s, ring=0) if i == si else s for i, s in enumerate(sched.streams)))
    trips, timeline = inst.run(moved)
    wrong = [dataclasses.replace(t, ring=1) if t.stream == si else t for t in trips]
    assert solve(inst, sched, fixed=timeline, fixed_trips=wrong).status == "INFEASIBLE"
    message = explain_violation(inst, wrong, timeline)
    assert message.startswith("R1 violated: send e") and "of virtual ring 1, the stream's" in message


def test_two_sends_on_one_link_of_the_second_ring_are_rejected_and_named() -> None:
    """NoOverlap holds per physical directed link, ring 1's too."""
    inst = _torus(1, 5)[0]
    sched, trips, timeline, _ = inst.heuristic()
    ring1 = _ring_links(inst.virtual_rings[1])
    sends = [k for k, op in enumerate(timeline.ops) if op.kind == SEND and (op.chiplet, op.unit) in ring1]
    by_link: dict[tuple[int, int], list[int]] = {}
    for k in sends:
        by_link.setdefault((timeline.ops[k].chiplet, timeline.ops[k].unit), []).append(k)
    a, b = next(ks for ks in by_link.values() if len(ks) > 1)[:2]
    ops = list(timeline.ops)
    first, second = ops[a], ops[b]
    if second.start < first.start:
        first, second, a, b = second, first, b, a
    ops[b] = second._replace(start=first.start + 1, end=first.start + 1 + second.end - second.start)
    bad = dataclasses.replace(timeline, ops=ops)
    assert solve(inst, sched, fixed=bad, fixed_trips=trips).status == "INFEASIBLE"
    assert explain_violation(inst, trips, bad).startswith(f"NoOverlap on link ({first.chiplet}, {first.unit}) violated")


def _hand_torus() -> Instance:
    """Four tokens on torus-4x4, one per expert of four, 16 shards each (one per chiplet): the
    heuristic puts streams on both rings; small enough for the free model's circuits."""
    target = load_preset("torus-4x4")
    routing = StepRouting(np.array([[0], [1], [2], [3]], dtype=np.int32), np.ones((4, 1), np.float32),
                          np.array([1, 2, 7, 11], dtype=np.int32))
    rings = tuple(Ring(r) for r in target.rings)
    return Instance(make_shard_plan(SMALL, target, 1, 12), rings[0], CostModel(target, "bf16"), routing,
                    rings=rings)


def test_gap_on_the_torus_is_bounded_under_the_rules() -> None:
    """Bounds (per link over both rings, Jackson, R6) <= CP-SAT's bound <= best <= heuristic, and
    the relaxations (R1-R3 over both rings' paths, R6) stay at or below the best under the rules."""
    from fsedp_compiler.crosscheck.report import crosscheck

    inst = _hand_torus()
    assert {s.ring for s in inst.heuristic()[0].streams} == {0, 1}
    row = crosscheck(inst, work_limit=0.05, relaxed=True)
    assert row["verified"]
    assert max(row["bounds"].values()) <= row["bound_ns"] <= row["best_ns"] <= row["heuristic_ns"]
    assert row["gap"] >= row["gap_to_best"] >= 0
    assert row["relaxed_ns"] <= row["best_ns"] and row["any_order_ns"] <= row["best_ns"]
    assert row["relaxed_bound_ns"] <= row["best_ns"]
    assert set(row["alternatives_ns"]) == {"short", "balanced"}


def test_the_free_model_admits_the_multi_ring_schedule() -> None:
    """Without R1-R3 the candidate paths are both ways round every ring, so the heuristic's
    schedule (shards on both rings) and the shortest-way witness are solutions, exactly."""
    from fsedp_compiler.crosscheck.free import shortest_way, solve_free

    inst = _hand_torus()
    sched, trips, timeline, _ = inst.heuristic()
    assert len({t.ring for t in trips}) == 2
    witness = shortest_way(inst, sched)
    for tr, tl in ((trips, timeline), *([witness] if witness else [])):
        pinned = solve_free(inst, sched, hint=tl, hint_trips=tr, time_limit=60, pin=True)
        assert (pinned.status, pinned.makespan) == ("OPTIMAL", tl.makespan)


def test_a_real_torus_step_is_verified() -> None:
    """A real step (`crosscheck_steps`: 16 synthetic tokens on torus-4x4, the compiler's plan):
    the instance has both rings, the heuristic spreads streams over them and is verified exactly."""
    from fsedp_compiler.crosscheck.report import crosscheck
    from fsedp_compiler.crosscheck.steps import step_instances, synth_steps
    from fsedp_compiler.ir.modules import load_model_spec

    spec = load_model_spec(str(REPO / "examples/models/tiny-moe.mlir"))
    target = load_preset("torus-4x4")
    (inst,) = step_instances(spec, target, synth_steps(spec, target, 16, 1))
    assert len(inst.virtual_rings) == 2
    sched = inst.heuristic()[0]
    assert {s.ring for s in sched.streams} == {0, 1}
    row = crosscheck(inst, work_limit=0.02, relaxed=False)
    assert row["verified"]
    assert max(row["bounds"].values()) <= row["bound_ns"] <= row["best_ns"] <= row["heuristic_ns"]
