"""CP-SAT cross-check: exact agreement with the simulator, known optima, relaxations, violations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.crosscheck.model import solve
from fsedp_compiler.crosscheck.report import explain_violation, random_instances
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import StepRouting
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import FFN, LOAD
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target_files import load_preset, parse_target_toml

from test_simulator import TOML  # tests/ is on sys.path (pytest rootdir-relative imports)

REPO = Path(__file__).resolve().parent.parent


def hand_instance(n: int, shards: int, buffers: int, chiplet_of_token: list[int]) -> Instance:
    target = parse_target_toml(TOML.format(n=n), "hand.toml")
    layer = MoeLayerSpec(0, d_model=10, d_ffn=50 * shards, num_experts=1, top_k=1)
    plan = ShardPlan(layer, shards, buffers, ((0, 0),))
    experts = np.zeros((len(chiplet_of_token), 1), dtype=np.int32)
    routing = StepRouting(experts, np.ones(experts.shape, np.float32), np.array(chiplet_of_token, dtype=np.int32))
    return Instance(plan, Ring(target.ring), CostModel(target), routing)


def test_known_optimum_one_shard_one_link() -> None:
    inst = hand_instance(2, 1, 2, [1])
    sched, trips, timeline, _ = inst.heuristic()
    result = solve(inst, sched, hint=timeline, hint_trips=trips)
    assert (result.status, result.makespan) == ("OPTIMAL", 300 + 100 + 30 + 5 + 2)


def test_known_optimum_two_buffer_pipeline() -> None:
    # two shards, two buffers: R4's critical bubble starts on chiplet 1 (no DRAM), so chiplet 0
    # loads both shards back to back (round 1's "two free to load" made the second wait: 867)
    inst = hand_instance(2, 2, 2, [1])
    sched, trips, timeline, _ = inst.heuristic()
    assert timeline.makespan == 737
    result = solve(inst, sched, hint=timeline, hint_trips=trips)
    assert (result.status, result.makespan) == ("OPTIMAL", 737)


def test_known_optimum_ring_of_three_prefers_the_short_way() -> None:
    # the member is one hop away counter-clockwise, two clockwise: R2 lets the expert choose
    inst = hand_instance(3, 1, 4, [2])
    sched, trips, timeline, _ = inst.heuristic()
    result = solve(inst, sched, hint=timeline, hint_trips=trips)
    assert (result.status, result.makespan) == ("OPTIMAL", 300 + 100 + 30 + 5 + 2)


def test_one_global_order_costs_a_hop_here() -> None:
    """Two chiplets, each homing one shard of both experts; chiplet 0's token needs expert 0,
    chiplet 1's expert 1. Each channel should load the shard that must travel first and its own
    expert's shard last, but R6 gives both channels one stream order, so one of them ends with a
    shard that still has a hop to go: 2 x 300 + 100 + 35 + 2 against 2 x 300 + 100 + 2."""
    target = parse_target_toml(TOML.format(n=2).replace("dram_at = [0]", 'dram_at = "all"'), "hand.toml")
    layer = MoeLayerSpec(0, d_model=10, d_ffn=100, num_experts=2, top_k=1)
    plan = ShardPlan(layer, 2, 4, ((0, 0), (1, 0)))
    routing = StepRouting(np.array([[0], [1]], dtype=np.int32), np.ones((2, 1), np.float32),
                          np.array([0, 1], dtype=np.int32))
    inst = Instance(plan, Ring(target.ring), CostModel(target), routing)
    sched, trips, timeline, _ = inst.heuristic()
    assert timeline.makespan == 737
    rules = solve(inst, sched, hint=timeline, hint_trips=trips)
    assert (rules.status, rules.makespan) == ("OPTIMAL", 737)
    any_order = solve(inst, sched, hint=timeline, hint_trips=trips, global_order=False)
    assert (any_order.status, any_order.makespan) == ("OPTIMAL", 702)


@st.composite
def random_cases(draw):
    target = load_preset(draw(st.sampled_from(["paper-2x2", "ring-8"])))
    experts = draw(st.integers(2, 6))
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=experts, top_k=draw(st.integers(1, 2)))
    return random_instances(layer, target, 1, draw(st.integers(0, 10**6)), buffers=draw(st.integers(2, 6)),
                            max_tokens_per_chiplet=2)[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cases())
def test_model_evaluates_the_heuristic_exactly_as_the_simulator(inst) -> None:
    """Same decisions and start times: CP-SAT finds them feasible, with the simulator's makespan."""
    sched, trips, timeline, _ = inst.heuristic()
    result = solve(inst, sched, fixed=timeline, fixed_trips=trips, time_limit=20)
    assert result.status == "OPTIMAL"
    assert result.makespan == timeline.makespan
    assert explain_violation(inst, trips, timeline) == "no violation found by the direct check"


def test_relaxed_is_never_worse_than_constrained() -> None:
    """Dropping R1-R3 (or R6) only adds schedules: the relaxed models' bounds are at most the
    optimum under the rules, and their best (hinted with the heuristic) at most the heuristic's."""
    from fsedp_compiler.crosscheck.free import solve_free

    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=2)
    for inst in random_instances(layer, load_preset("paper-2x2"), 2, 3):
        sched, trips, timeline, _ = inst.heuristic()
        rules = solve(inst, sched, hint=timeline, hint_trips=trips, time_limit=20)
        free = solve_free(inst, sched, hint=timeline, hint_trips=trips, time_limit=5)
        assert rules.status == "OPTIMAL" and free.status in ("OPTIMAL", "FEASIBLE")
        assert free.bound <= rules.makespan <= timeline.makespan
        assert free.makespan <= timeline.makespan
        any_order = solve(inst, sched, hint=timeline, hint_trips=trips, time_limit=5, global_order=False)
        assert any_order.bound <= rules.makespan and any_order.makespan <= rules.makespan


def test_schedules_under_the_rules_and_the_shortest_way_witness_solve_the_free_model() -> None:
    """The free model admits the heuristic's schedule and the shortest-way witness exactly, with
    their makespans; the witness walks no shard further than the rules do."""
    from fsedp_compiler.crosscheck.free import shortest_way, solve_free

    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=2)
    for target in ("paper-2x2", "ring-8"):
        inst = random_instances(layer, load_preset(target), 1, 7)[0]
        sched, trips, timeline, _ = inst.heuristic()
        witness_trips, witness = shortest_way(inst, sched)
        assert all(len(w.path) <= len(t.path) for w, t in zip(witness_trips, trips))
        for tr, tl in ((trips, timeline), (witness_trips, witness)):
            pinned = solve_free(inst, sched, hint=tl, hint_trips=tr, time_limit=20, pin=True)
            assert pinned.status == "OPTIMAL" and pinned.makespan == tl.makespan


def test_free_model_takes_the_short_way_the_rules_forbid() -> None:
    """One token on chiplet 0 of the 2x2 ring (0, 1, 3, 2) needs expert 0, whose 4 shards are
    homed one per chiplet. With B = 2 the rules send everything clockwise, so the shard homed on
    chiplet 1 walks 1 -> 3 -> 2 -> 0; without R1-R3 it takes the link 1 -> 0, and the step ends
    a hop earlier."""
    from fsedp_compiler.crosscheck.free import solve_free
    from fsedp_compiler.fsedp.shardplan import make_shard_plan

    target = load_preset("paper-2x2")
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=1)
    routing = StepRouting(np.array([[0]], dtype=np.int32), np.ones((1, 1), dtype=np.float32),
                          np.array([0], dtype=np.int32))
    inst = Instance(make_shard_plan(layer, target, 1, 2), Ring(target.ring), CostModel(target, "bf16"), routing)
    sched, trips, timeline, _ = inst.heuristic()
    assert max(len(t.path) for t in trips) == 4  # the long way round
    rules = solve(inst, sched, hint=timeline, hint_trips=trips, time_limit=10)
    free = solve_free(inst, sched, hint=timeline, hint_trips=trips, time_limit=10)
    assert rules.status == free.status == "OPTIMAL"
    # the farthest shard is now two hops away (3 -> 2 -> 0 or 3 -> 1 -> 0) instead of three
    hop = inst.cost.link_ns(inst.plan.shard_bytes(0))
    assert rules.makespan - hop <= free.makespan < rules.makespan


def _inst():
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=2)
    return random_instances(layer, load_preset("paper-2x2"), 1, 5)[0]


def test_an_ffn_before_its_shard_arrives_is_rejected_and_named() -> None:
    inst = _inst()
    sched, trips, timeline, _ = inst.heuristic()
    ops = list(timeline.ops)
    i = next(k for k, op in enumerate(ops) if op.kind == FFN and op.hop > 0)
    ops[i] = ops[i]._replace(start=0, end=ops[i].end - ops[i].start)
    bad = dataclasses.replace(timeline, ops=ops)
    assert solve(inst, sched, fixed=bad, fixed_trips=trips).status == "INFEASIBLE"
    t = trips[ops[i].trip]
    message = explain_violation(inst, trips, bad)
    assert message.startswith(f"precedence violated: ffn e{t.expert}s{t.shard} on chiplet {ops[i].chiplet} starts at 0")


def _with_first_two_loads_of_chiplet_0(edit):
    """The heuristic schedule of `_inst()` with its first two loads on chiplet 0 replaced by
    `edit(first, second, trips)`: (instance, schedule, trips, tampered timeline)."""
    inst = _inst()
    sched, trips, timeline, _ = inst.heuristic()
    ops = list(timeline.ops)
    loads = [k for k, op in enumerate(ops) if op.kind == LOAD and op.chiplet == 0]
    ops[loads[0]], ops[loads[1]] = edit(ops[loads[0]], ops[loads[1]], trips)
    return inst, sched, trips, dataclasses.replace(timeline, ops=ops)


def test_two_loads_on_one_channel_at_once_are_rejected_and_named() -> None:
    def overlap(first, second, _trips):
        return first, second._replace(start=first.start + 1, end=first.start + 1 + second.end - second.start)

    inst, sched, trips, bad = _with_first_two_loads_of_chiplet_0(overlap)
    assert solve(inst, sched, fixed=bad, fixed_trips=trips).status == "INFEASIBLE"
    assert explain_violation(inst, trips, bad).startswith("NoOverlap on DRAM channel (0, 0) violated: load e")


def test_loads_out_of_the_stream_order_are_rejected_as_r6() -> None:
    def swap(first, second, trips):
        assert trips[first.trip].stream < trips[second.trip].stream
        busy = first.end - first.start
        return (first._replace(start=second.start, end=second.start + busy),
                second._replace(start=first.start, end=first.start + busy))

    inst, sched, trips, bad = _with_first_two_loads_of_chiplet_0(swap)
    assert solve(inst, sched, fixed=bad, fixed_trips=trips).status == "INFEASIBLE"
    message = explain_violation(inst, trips, bad)
    assert message.startswith("R6 (one global order) violated on DRAM channel (0, 0): load e")


def _twice(fsedpc, tmp_path: Path, *args: str) -> tuple[list[dict], str]:
    """Run `fsedpc crosscheck` twice; both JSON reports without their wall-clock fields, and stdout."""
    reports = []
    for name in ("a.json", "b.json"):
        r = fsedpc("crosscheck", str(REPO / "examples/models/tiny-moe.mlir"), *args, "--json", str(tmp_path / name))
        assert r.code == 0, r.err
        data = json.loads((tmp_path / name).read_text())
        for key in ("median_solver_s", "median_heuristic_s"):
            data.pop(key)
        for row in data["instances"]:
            for key in ("solver_s", "heuristic_s", "verify_s"):
                row.pop(key)
        reports.append(data)
    return reports, r.out


def test_crosscheck_cli_report_is_deterministic(fsedpc, tmp_path: Path) -> None:
    reports, out = _twice(fsedpc, tmp_path, "--target", "paper-2x2", "--random", "1", "--seed", "3",
                          "--work-limit", "0.2", "--relaxed")
    assert reports[0] == reports[1]
    row = reports[0]["instances"][0]
    assert {"heuristic_ns", "optimum_ns", "bound_ns", "status", "gap", "verified", "relaxed_ns",
            "price_of_virtualization"} <= set(row)
    assert row["verified"] and row["gap"] >= 0 and row["relaxed_ns"] <= row["best_ns"] <= row["heuristic_ns"]
    assert row["any_order_ns"] <= row["best_ns"] and row["price_of_global_order"] >= 0
    assert "median gap" in out


def test_a_work_limit_makes_solves_cut_short_reproducible(fsedpc, tmp_path: Path) -> None:
    """CP-SAT's deterministic time instead of wall-clock: a solve stopped by the limit reports
    the same solution and bound every time."""
    reports, out = _twice(fsedpc, tmp_path, "--target", "ring-8", "--random", "1", "--seed", "1",
                          "--work-limit", "0.05")
    assert reports[0] == reports[1]
    row = reports[0]["instances"][0]
    assert row["status"] == "FEASIBLE" and row["bound_ns"] < row["best_ns"]
    assert "work limit 0.05" in out


def test_crosscheck_rejects_a_non_positive_limit(fsedpc) -> None:
    r = fsedpc("crosscheck", str(REPO / "examples/models/tiny-moe.mlir"), "--target", "ring-8", "--random", "1",
               "--work-limit", "0")
    assert r.code == 2 and "--work-limit: must be positive" in r.err and "Traceback" not in r.err


def test_crosscheck_on_a_trace_step(fsedpc) -> None:
    r = fsedpc("crosscheck", str(REPO / "examples/models/tiny-moe.mlir"), "--target", "paper-2x2",
               "--trace", str(REPO / "examples/traces/tiny-moe-4c.npz"), "--layer", "2", "--step", "1",
               "--time-limit", "5")
    assert r.code == 0, r.err
    assert "all verified: True" in r.out


def _bfs_cover(n: int, home: int, members: frozenset[int]) -> int:
    """Fewest hops on an n-ring from `home` visiting every member, by breadth-first search."""
    start = (home, members & {home})
    seen, frontier, hops = {start}, [start], 0
    while not any(visited == members for _, visited in frontier):
        nxt = []
        for node, visited in frontier:
            for w in ((node + 1) % n, (node - 1) % n):
                state = (w, visited | (members & {w}))
                if state not in seen:
                    seen.add(state)
                    nxt.append(state)
        frontier, hops = nxt, hops + 1
    return hops


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1),
                                                     st.sets(st.integers(0, n - 1), min_size=1))))
def test_cover_hops_is_the_shortest_walk_over_the_members(case) -> None:
    """The free model's tail bound walks the fewest hops that reach every member (on a ring)."""
    from fsedp_compiler.crosscheck.free import cover_hops

    n, home, members = case
    order = tuple(np.random.default_rng(n + home).permutation(n).tolist())  # any Hamiltonian order
    ring = Ring(order)
    positions = frozenset(ring.pos(c) for c in members)
    assert cover_hops(ring, home, sorted(members)) == _bfs_cover(n, ring.pos(home), positions)


def test_model_verifies_schedules_whose_shards_go_both_ways() -> None:
    """Slow links make the per-shard policy send experts SHORT (each shard the shorter way
    round): the model, one direction per shard home, evaluates them exactly too."""
    target = load_preset("ring-8")
    target = dataclasses.replace(target, link=dataclasses.replace(target.link, gbps=8.0))
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=6, top_k=2)
    seen_short = False
    for inst in random_instances(layer, target, 3, 1, buffers=6, max_tokens_per_chiplet=1):
        sched, trips, timeline, _ = inst.heuristic()
        seen_short |= any(s.direction == 0 for s in sched.streams)
        result = solve(inst, sched, fixed=timeline, fixed_trips=trips, time_limit=20)
        assert (result.status, result.makespan) == ("OPTIMAL", timeline.makespan)
    assert seen_short


def test_patterns_are_the_stream_table_directions() -> None:
    """The model's direction choices per stream are CW, CCW, SHORT and SHORT_CCW, each home's way
    as `ring.directed_routes` has it (equal patterns kept once); one way only without the buffers
    for a second network (R4)."""
    from fsedp_compiler.crosscheck.trips import direction_patterns
    from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW, directed_routes

    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=6, top_k=2)
    target = load_preset("ring-8")
    for buffers, allowed in ((6, {CW, CCW, SHORT, SHORT_CCW}), (2, {CW})):
        inst = random_instances(layer, target, 1, 4, buffers=buffers, max_tokens_per_chiplet=1)[0]
        sched = inst.heuristic()[0]
        patterns = direction_patterns(inst, sched)
        for stream, options in zip(sched.streams, patterns):
            assert set(options) <= allowed and CW in options
            for d, ways in options.items():
                assert ways == {h: directed_routes(inst.ring, stream.members, d)[0][h] for h in ways}
            assert len({tuple(sorted(w.items())) for w in options.values()}) == len(options)


def test_real_step_is_verified_and_bounded() -> None:
    """A real step (`crosscheck_steps`: tiny-moe on mesh-4x4, 16 synthetic tokens, the compiler's
    plan): the heuristic is verified exactly, and bound <= best found <= heuristic, with the
    static bounds below the bound; a small work limit keeps it fast."""
    from fsedp_compiler.crosscheck.report import crosscheck
    from fsedp_compiler.crosscheck.steps import step_instances, synth_steps
    from fsedp_compiler.ir.modules import load_model_spec

    model = load_model_spec(str(REPO / "examples/models/tiny-moe.mlir"))
    target = load_preset("mesh-4x4")
    (inst,) = step_instances(model, target, synth_steps(model, target, 16, 1))
    row = crosscheck(inst, work_limit=0.02, relaxed=False)
    assert row["verified"] and row["shards"] == len(inst.heuristic()[1])
    assert max(row["bounds"].values()) <= row["bound_ns"] <= row["best_ns"] <= row["heuristic_ns"]
    assert row["gap"] >= row["gap_to_best"] >= 0


def test_crosscheck_real_steps_need_one_source(fsedpc) -> None:
    model = str(REPO / "examples/models/tiny-moe.mlir")
    r = fsedpc("crosscheck", model, "--target", "mesh-4x4", "--tokens", "16", "--random", "1")
    assert r.code == 2 and "give one of --random N, --trace FILE or --tokens T" in r.err
    r = fsedpc("crosscheck", model, "--target", "mesh-4x4", "--tokens", "16", "--steps", "0")
    assert r.code == 2 and "--steps: must be at least 1" in r.err and "Traceback" not in r.err
