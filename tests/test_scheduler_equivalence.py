"""The O(A·N) scheduler and stream expansion (issue 17) give exactly what the O(A·N²) ones gave:
`schedule`, `trajectories`, `stream_counts` and `stream_link_bytes` against the frozen copy of
the old algorithm in tests/sched_reference.py, on random routings, presets and every policy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sched_reference as ref
from expand_reference import stream_counts
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp import schedtables
from fsedp_compiler.fsedp.policy import DIRECTIONS, ORDERS, TRAJECTORIES
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import (Policy, StepRouting, StepSchedule, local_tokens,
                                            schedule, stream_link_bytes)
from fsedp_compiler.fsedp.shardplan import ShardPlan, make_shard_plan
from fsedp_compiler.fsedp.streaming import trajectories
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import CostParams, Target
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.inputs.topology import topology_edges

PRESETS = ["ring-8", "mesh-4x4", "paper-2x2", "torus-4x4", "hbm-8", "paper-4x4"]
#: the old algorithm's policies (the per-shard policy is newer: tests/test_scheduler.py, test_per_shard.py)
POLICIES = [Policy(o, d, t) for o in ORDERS for d in DIRECTIONS if d != "per-shard" for t in TRAJECTORIES]
BALANCED = Policy(direction="balanced")


def ring_target(n: int, dram_at: tuple[int, ...] | None = None) -> Target:
    """A ring of n chiplets with the ring-8 preset's parameters (DRAM on `dram_at`, default all)."""
    return dataclasses.replace(resolve_target("ring-8"), name=f"ring-{n}", num_chiplets=n,
                               edges=topology_edges("ring", n), dram_at=dram_at or tuple(range(n)),
                               ring=tuple(range(n)))


@st.composite
def steps(draw, targets=st.sampled_from(PRESETS).map(resolve_target), max_tokens_per_chiplet: int = 3,
          d_model: int = 16, max_experts: int = 12, cols: int = 4):
    target = draw(targets)
    n = target.num_chiplets
    experts = draw(st.integers(1, max_experts))
    top_k = draw(st.integers(1, min(4, experts)))
    shared = draw(st.integers(0, 2))
    g = draw(st.integers(1, 3))
    layer = MoeLayerSpec(0, d_model=d_model, d_ffn=draw(st.integers(1, cols)) * g * n, num_experts=experts,
                         top_k=top_k, num_shared=shared, d_ffn_shared=8 * g * n if shared else 0,
                         dtype=draw(st.sampled_from(["bf16", "int8"])))
    plan = make_shard_plan(layer, target, g, draw(st.integers(2, 8)))
    target = dataclasses.replace(target, cost=CostParams(min_tokens=draw(st.integers(1, 4)),
                                                         op_overhead_ns=draw(st.integers(0, 3))))
    cost = CostModel(target, layer.dtype)
    tokens = draw(st.integers(1, max_tokens_per_chiplet * n))
    rng = np.random.default_rng(draw(st.integers(0, 2**20)))
    # Zipf-skewed top-k like real routers (hot experts), tokens spread over the chiplets
    p = 1.0 / np.arange(1, experts + 1) ** draw(st.sampled_from([0.0, 0.8, 1.5]))
    chosen = np.array([rng.choice(experts, top_k, replace=False, p=p / p.sum()) for _ in range(tokens)],
                      dtype=np.int32)
    where = rng.integers(0, n, tokens).astype(np.int32)
    routing = StepRouting(chosen, np.full(chosen.shape, 1.0 / top_k, dtype=np.float32), where,
                          layer=draw(st.integers(0, 3)), step=draw(st.integers(0, 5)))
    return plan, Ring(target.ring), cost, routing


def assert_same(new: StepSchedule, old: StepSchedule) -> None:
    assert new == old
    assert new.digest() == old.digest()
    assert new.estimated_ns == old.estimated_ns and new.bounds == old.bounds
    assert all(type(v) is int for v in (new.estimated_ns, *new.bounds))
    assert all(type(v) is int for s in new.streams for v in (s.expert, s.members, s.direction, *s.tokens))


def check(routing: StepRouting, plan: ShardPlan, ring: Ring, cost: CostModel,
          policy: Policy = BALANCED) -> StepSchedule:
    """The new schedule, after checking it against the old algorithm's."""
    new = schedule(routing, plan, ring, cost, policy)
    assert_same(new, ref.schedule(routing, plan, ring, cost, policy))
    return new


def assert_streams_expand_the_same(sched: StepSchedule, plan: ShardPlan, ring: Ring, rule: str) -> None:
    assert trajectories(sched, plan, ring, rule) == ref.trajectories(sched, plan, ring, rule)
    for s in sched.streams:
        counts = stream_counts(plan, ring, s.expert, s.members, s.direction, rule)[s.direction]
        assert (counts.loads, counts.visits, counts.ends) == ref.stream_counts(plan, ring, s.expert, s.members,
                                                                               s.direction, rule)
        for c in range(ring.size):
            assert counts.recvs(c) == counts.visits[c] - sum(k for (h, _), k in counts.loads.items() if h == c)
        assert (stream_link_bytes(ring, plan, s.expert, s.members, s.direction, rule)
                == ref.stream_link_bytes(ring, plan, s.expert, s.members, s.direction, rule)).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps())
def test_schedule_equals_the_old_algorithm_on_presets_for_every_policy(case) -> None:
    plan, ring, cost, routing = case
    assert (local_tokens(routing, plan, ring.size) == ref.local_tokens(routing, plan, ring.size)).all()
    for policy in POLICIES:
        new = check(routing, plan, ring, cost, policy)
        if policy.order == "paired":
            assert_streams_expand_the_same(new, plan, ring, policy.trajectory)


def slow_links(target: Target, gbps: float) -> Target:
    return dataclasses.replace(target, link=dataclasses.replace(target.link, gbps=gbps))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(targets=st.builds(slow_links, st.sampled_from(PRESETS).map(resolve_target),
                               st.sampled_from([1.0, 2.0, 4.0, 8.0, 34.1])),
             d_model=4, max_experts=5, cols=2))
def test_schedule_equals_the_old_algorithm_where_integer_ties_are_common(case) -> None:
    """Tiny shards on slow links: equal peaks and bounds exercise every tie-break (<= vs <)."""
    plan, ring, cost, routing = case
    for policy in POLICIES:
        check(routing, plan, ring, cost, policy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(targets=st.sampled_from([1, 2, 3, 5, 12]).map(ring_target), max_tokens_per_chiplet=6))
def test_schedule_equals_the_old_algorithm_on_small_and_odd_rings(case) -> None:
    plan, ring, cost, routing = case
    for policy in POLICIES:
        check(routing, plan, ring, cost, policy)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(targets=st.sampled_from([ring_target(64), ring_target(70), ring_target(128, (0, 5, 64, 127))]),
             max_tokens_per_chiplet=1))
def test_schedule_equals_the_old_algorithm_on_wide_rings(case) -> None:
    """Above 62 chiplets the bitmasks no longer fit an int64 (packed bytes path)."""
    plan, ring, cost, routing = case
    for policy in (BALANCED, Policy(direction="cw"), Policy(direction="balanced", order="id", trajectory="single-entry")):
        check(routing, plan, ring, cost, policy)


def test_schedule_is_the_same_with_a_fresh_cost_model_every_call() -> None:
    """The simulator builds a CostModel per step: the cached tables must be found by value."""
    target = resolve_target("mesh-4x4")
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=8, top_k=2, num_shared=1, d_ffn_shared=64)
    plan, ring = make_shard_plan(layer, target, 1, 6), Ring(target.ring)
    rng = np.random.default_rng(3)
    for step in range(4):
        chosen = np.array([rng.choice(8, 2, replace=False) for _ in range(20)], dtype=np.int32)
        routing = StepRouting(chosen, np.full(chosen.shape, 0.5, dtype=np.float32),
                              rng.integers(0, 16, 20).astype(np.int32), 0, step)
        assert_same(schedule(routing, plan, ring, CostModel(target), BALANCED),
                    ref.schedule(routing, plan, ring, CostModel(target), BALANCED))


def test_local_tokens_refuses_ids_outside_the_plan() -> None:
    target = resolve_target("ring-8")
    layer = MoeLayerSpec(0, d_model=16, d_ffn=64, num_experts=4, top_k=1)
    plan = make_shard_plan(layer, target, 1, 4)
    ones = np.ones((2, 1), np.float32)
    ok = StepRouting(np.array([[0], [3]], dtype=np.int32), ones, np.array([0, 7], np.int32))
    assert local_tokens(ok, plan, 8).sum() == 2
    for experts, where in (([[0], [4]], [0, 7]), ([[0], [1]], [0, 8]), ([[0], [1]], [0, -1])):
        bad = StepRouting(np.array(experts, dtype=np.int32), ones, np.array(where, np.int32))
        with pytest.raises(IndexError):
            local_tokens(bad, plan, 8)


def test_link_bytes_without_float_sums_are_the_same() -> None:
    """Byte sums beyond 2**53 take the integer scatter path; both paths agree."""
    rng = np.random.default_rng(0)
    n = 9
    weights = rng.integers(0, 10**6, (5, n))
    lengths = rng.integers(0, 2 * n - np.arange(n), (5, n))  # arcs end before 2N
    exact = schedtables.walk_link_bytes(weights, lengths, True)
    assert (exact == schedtables.walk_link_bytes(weights, lengths, False)).all()
    assert exact.dtype == np.int64


def test_one_way_fallback_at_an_exact_tie() -> None:
    """A step whose one-way link bound equals its DRAM bound exactly streams one way (<=)."""
    target = slow_links(resolve_target("ring-8"), 1.0)
    layer = MoeLayerSpec(0, d_model=1, d_ffn=8, num_experts=5, top_k=2, dtype="int8")
    plan, ring, cost = make_shard_plan(layer, target, 1, 4), Ring(target.ring), CostModel(target, "int8")
    experts = [[4, 0], [0, 4], [2, 4], [3, 4], [3, 4], [0, 4], [0, 3], [3, 1], [2, 4], [1, 2], [2, 1], [2, 3],
               [0, 1]]
    routing = StepRouting(np.array(experts, dtype=np.int32), np.full((13, 2), 0.5, np.float32),
                          np.array([4, 2, 6, 5, 0, 7, 0, 2, 7, 4, 1, 4, 2], dtype=np.int32))
    new = schedule(routing, plan, ring, cost, BALANCED)
    assert_same(new, ref.schedule(routing, plan, ring, cost, BALANCED))
    assert new.bounds[0] == new.bounds[1] == max(new.bounds) and all(s.direction == 1 for s in new.streams)
