"""The faster `schedule` (issue 17 item 1: candidate plans that cannot win are skipped, small
arrays handled without numpy) gives exactly what it gave before: every policy, on every virtual
ring of the target, against the frozen copy in tests/sched_pershard_reference.py, on random steps
of the presets, fully connected and torus targets (several rings) and bench-sized layers."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sched_pershard_reference as frozen
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp import schedbalance, schedgreedy, schedtables
from fsedp_compiler.fsedp import scheduler
from fsedp_compiler.fsedp.policy import TRAJECTORIES
from fsedp_compiler.fsedp.policy import DIRECTIONS, ORDERS
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT_CCW, Ring, route_lengths
from fsedp_compiler.fsedp.schedtables import home_weights, link_bytes, link_bytes_and_lengths, short_link_bytes, tables_for
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, Stream, schedule
from fsedp_compiler.fsedp.shardplan import make_shard_plan
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.inputs.topology import topology_edges
from test_scheduler_equivalence import PRESETS, assert_same, slow_links, steps

#: every policy, the per-shard one first (the one the speed-ups touch most)
ALL_POLICIES = [Policy(o, d, t, r) for d in DIRECTIONS for o in ORDERS for t in TRAJECTORIES for r in ("all", "one")]


def full_target(n: int, gbps: float | None = None) -> Target:
    """n chiplets, every pair linked (about n/2 virtual rings, at most `rings.MAX_RINGS`)."""
    base = resolve_target("ring-8")
    target = dataclasses.replace(base, name=f"full-{n}", num_chiplets=n, topology="full",
                                 edges=topology_edges("full", n), dram_at=tuple(range(n)), ring=tuple(range(n)))
    return slow_links(target, gbps) if gbps else target


def check_all_policies(plan, cost, routing, policies=ALL_POLICIES) -> None:
    rings = [Ring(r) for r in cost.target.rings]
    for policy in policies:
        for ring in (rings, rings[0]):
            assert_same(schedule(routing, plan, ring, cost, policy), frozen.schedule(routing, plan, ring, cost, policy))


TARGETS = st.one_of(st.sampled_from(PRESETS).map(resolve_target),
                    st.builds(full_target, st.sampled_from([5, 6, 8])),
                    st.builds(slow_links, st.sampled_from(["torus-4x4", "ring-8", "mesh-4x4"]).map(resolve_target),
                              st.sampled_from([1.0, 4.0, 34.1])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(targets=TARGETS))
def test_schedule_equals_the_frozen_scheduler_for_every_policy(case) -> None:
    plan, _, cost, routing = case
    check_all_policies(plan, cost, routing)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(targets=st.builds(slow_links, st.sampled_from(["torus-4x4", "ring-8", "paper-2x2"]).map(resolve_target),
                               st.sampled_from([1.0, 2.0, 8.0])), d_model=4, max_experts=5, cols=2))
def test_schedule_equals_the_frozen_scheduler_where_integer_ties_are_common(case) -> None:
    """Tiny shards on slow links: equal scores of the candidate plans exercise every tie-break."""
    plan, _, cost, routing = case
    check_all_policies(plan, cost, routing, [p for p in ALL_POLICIES if p.direction == "per-shard"])


def bench_like_steps(n: int, experts: int, top_k: int, shared: int, tokens: int, seed: int, target: Target):
    """Routed steps shaped like the bench's (many experts, Zipf-skewed, tokens clustered)."""
    layer = MoeLayerSpec(0, d_model=64, d_ffn=4 * n, num_experts=experts, top_k=top_k, num_shared=shared,
                         d_ffn_shared=4 * n if shared else 0)
    plan = make_shard_plan(layer, target, 1, 6)
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, experts + 1) ** 0.6
    for step in range(4):
        chosen = np.array([rng.choice(experts, top_k, replace=False, p=p / p.sum()) for _ in range(tokens)],
                          dtype=np.int32)
        where = np.sort(rng.integers(0, n, tokens)).astype(np.int32)
        yield plan, StepRouting(chosen, np.full(chosen.shape, 1.0 / top_k, np.float32), where, 0, step)


def schedule_bench_like(targets: list[Target], policies: list[Policy], shape: tuple[int, int, int, int],
                        seed: int) -> None:
    """Every policy on `bench_like_steps` of `shape` (experts, top-k, shared, tokens) on each
    target with slow, medium and fast links (the seed counts up from `seed`)."""
    for k, (target, gbps) in enumerate(itertools.product(targets, (2.0, 34.1, 400.0))):
        target = slow_links(target, gbps)
        cost = CostModel(target)
        rings = [Ring(r) for r in target.rings]
        for plan, routing in bench_like_steps(target.num_chiplets, *shape, seed + k, target):
            for policy in policies:
                schedule(routing, plan, rings, cost, policy)


def test_schedule_equals_the_frozen_scheduler_on_bench_sized_steps(monkeypatch) -> None:
    """Seeded steps with up to a hundred active experts, on rings, tori and fully connected
    targets, links from slow (the links bind: no plan skipped) to fast (the first plan wins);
    every plan wins somewhere, and plans are skipped (the frozen scheduler builds all three)."""
    built: Counter[str] = Counter()
    for name in ("balance", "balance_rings", "per_shard"):
        def counted(*args, _name=name, _f=getattr(schedbalance, name), **kwargs):
            built[_name] += 1
            out = _f(*args, **kwargs)
            if _name == "per_shard":
                built["won " + ("cw" if set(out[0]) == {CW} else "balanced" if set(out[0]) <= {CW, CCW} and
                                not any(out[1]) else "per-shard")] += 1
            return out
        monkeypatch.setattr(schedbalance, name, counted)
    monkeypatch.setattr(scheduler, "per_shard", schedbalance.per_shard)
    per_shard = [Policy(direction="per-shard"), Policy(direction="per-shard", order="id", trajectory="single-entry"),
                 Policy(direction="per-shard", trajectory="fullring")]
    shapes = [(8, 2, 0, 16), (64, 6, 1, 32), (96, 8, 1, 24)]
    targets = [resolve_target("torus-4x4"), full_target(8), resolve_target("ring-8")]
    for seed, ((experts, top_k, shared, tokens), target, gbps) in enumerate(
            itertools.product(shapes, targets, (2.0, 34.1, 400.0))):
        target = slow_links(target, gbps)
        cost = CostModel(target)
        for plan, routing in bench_like_steps(target.num_chiplets, experts, top_k, shared, tokens, seed, target):
            check_all_policies(plan, cost, routing, per_shard)
    assert built["won cw"] and built["won balanced"] and built["won per-shard"]
    assert built["per_shard"] > max(built["balance"], built["balance_rings"]) > 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**20))
def test_nearest_lengths_and_short_bytes_from_the_link_sweep_equal_the_walks(n: int, seed: int) -> None:
    """The links each home walks, read off the `nearest` link-byte sweep, are `route_lengths`';
    the SHORT ways' bytes swept are those of their arcs walked."""
    target = full_target(n) if n >= 3 else resolve_target("ring-8")
    n = target.num_chiplets
    layer = MoeLayerSpec(0, d_model=4, d_ffn=n, num_experts=6, top_k=1)
    rng = np.random.default_rng(seed)
    plan, ring, cost = make_shard_plan(layer, target, 1, 6), Ring(tuple(rng.permutation(n).tolist())), CostModel(target)
    tables = tables_for(plan, ring, cost)
    present = rng.random((6, n)) < rng.random()
    present[np.arange(6), rng.integers(0, n, 6)] = True  # no empty member set
    active = np.sort(rng.choice(plan.num_streams, 6, replace=False))
    link, lengths, after = link_bytes_and_lengths(tables, present, active, "nearest")
    walk_members = present[:, tables.walk[2]].reshape(12, n)
    assert (lengths == route_lengths(walk_members, tables.directions[2][:12], "nearest")).all()
    assert (link == link_bytes(tables, present, active, 2, "nearest")).all()
    # the SHORT ways' bytes by the sweep equal the arcs walked
    weights = home_weights(tables, active)
    swept, walked = short_link_bytes(tables, lengths, weights, after), short_link_bytes(tables, lengths, weights)
    assert all((a == b).all() and a.dtype == np.int64 for a, b in zip(swept, walked))


def test_streams_built_without_init_are_streams() -> None:
    """`scheduler._streams` fills the instance dict directly: the same fields, equality, hash,
    repr, pickling and `dataclasses.replace` as streams built by `Stream(...)`; `schedule` builds
    its `StepSchedule` that way too."""
    fields = [(3, 0b1011, CW, (1, 2, 0, 4), 0), (7, 1, SHORT_CCW, (0, 5), 2)]
    built = scheduler._streams([1, 0], *(list(column) for column in zip(*fields[::-1])))
    for got, f in zip(built, fields):
        want = Stream(*f)
        assert type(got) is Stream and got == want and hash(got) == hash(want) and repr(got) == repr(want)
        assert dataclasses.astuple(got) == f and pickle.loads(pickle.dumps(got)) == want
        assert dataclasses.replace(got, ring=1) == dataclasses.replace(want, ring=1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.ring = 1  # type: ignore[misc]
    target = resolve_target("ring-8")
    layer = MoeLayerSpec(0, d_model=64, d_ffn=64, num_experts=8, top_k=2)
    plan, cost = make_shard_plan(layer, target, 1, 6), CostModel(target)
    routing = StepRouting(np.array([[0, 3], [5, 3]]), np.full((2, 2), 0.5), np.array([1, 6]), 2, 7)
    got = schedule(routing, plan, Ring(target.ring), cost)
    want = scheduler.StepSchedule(*dataclasses.astuple(got)[:2], got.streams, got.estimated_ns, got.bounds)
    assert type(got) is scheduler.StepSchedule and got == want and hash(got) == hash(want) and repr(got) == repr(want)
    assert pickle.loads(pickle.dumps(got)) == want and got.bounds == want.bounds and got.digest() == want.digest()


def test_skipping_plans_changes_nothing(monkeypatch) -> None:
    """`per_shard` with the plans it proves cannot win skipped returns what building all three
    returns, on the seeded bench-shaped steps (every policy order and trajectory, all rings)."""
    unpruned = schedbalance.per_shard
    calls = Counter()

    def both(*args, **kwargs):
        pruned = unpruned(*args, **kwargs)
        assert pruned == unpruned(*args, **kwargs, prune=False)
        calls["compared"] += 1
        return pruned

    monkeypatch.setattr(scheduler, "per_shard", both)
    policies = [Policy(o, "per-shard", t) for o in ORDERS for t in TRAJECTORIES]
    schedule_bench_like([resolve_target("torus-4x4"), full_target(6), resolve_target("ring-8")], policies,
                        (48, 6, 1, 24), 100)
    assert calls["compared"] == 9 * 4 * len(policies)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.sampled_from([2, 4, 1000]), st.integers(0, 2**20))
def test_both_plans_in_one_pass_equal_each_balance(count: int, n: int, high: int, seed: int) -> None:
    """`balance_both` makes the per-shard plan's and the balanced plan's choices of
    `balance_one_ring` and `balance` (small byte ranges: ties everywhere)."""
    rng = np.random.default_rng(seed)
    both = rng.integers(0, high, (2 * count, n), dtype=np.int64)
    short = tuple(rng.integers(0, high, (2 * count, n), dtype=np.int64) for _ in range(2))
    ordered = rng.permutation(count).tolist()
    per_shard_choice, balanced_choice = schedgreedy.balance_both(both, short, ordered)
    assert per_shard_choice == schedgreedy.balance_one_ring(both, short, ordered)
    assert balanced_choice == schedgreedy.balance(both, ordered)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 12), st.integers(0, 2**20))
def test_short_bytes_stacked_and_one_way_at_a_time_agree(n: int, seed: int) -> None:
    """`short_link_bytes` stacks both ways for small arrays and sweeps one way at a time for large
    ones: the same bytes either way."""
    target = full_target(n)
    layer = MoeLayerSpec(0, d_model=4, d_ffn=n, num_experts=6, top_k=1)
    rng = np.random.default_rng(seed)
    plan, ring, cost = make_shard_plan(layer, target, 1, 6), Ring(tuple(rng.permutation(n).tolist())), CostModel(target)
    tables = tables_for(plan, ring, cost)
    present = rng.random((6, n)) < rng.random()
    present[np.arange(6), rng.integers(0, n, 6)] = True
    active = np.sort(rng.choice(plan.num_streams, 6, replace=False))
    _, lengths, after = link_bytes_and_lengths(tables, present, active, "nearest")
    weights = home_weights(tables, active)
    got = []
    for limit in (0, 10**9):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(schedtables, "_STACKED_MAX", limit)
            got.append(short_link_bytes(tables, lengths, weights, after))
    assert all((a == b).all() and a.dtype == b.dtype == np.int64 for a, b in zip(*got))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2**20))
def test_member_rows_equal_the_sweeps(n: int, seed: int) -> None:
    """`Tables.members()` rows, gathered by (expert, member set), are the sweeps' bytes, lengths and
    bytes x links of those streams (what `per_shard` reads of them on small rings)."""
    target = full_target(n) if n >= 3 else resolve_target("ring-8")
    n = target.num_chiplets
    layer = MoeLayerSpec(0, d_model=4, d_ffn=n, num_experts=6, top_k=1)
    rng = np.random.default_rng(seed)
    plan, ring, cost = make_shard_plan(layer, target, 1, 6), Ring(tuple(rng.permutation(n).tolist())), CostModel(target)
    tables = tables_for(plan, ring, cost)
    rows = tables.members()
    assert rows is not None and not rows.options.flags.writeable
    present = rng.random((6, n)) < rng.random()
    present[np.arange(6), rng.integers(0, n, 6)] = True
    active = np.sort(rng.choice(plan.num_streams, 6, replace=False))
    keys = [e * (2**n - 1) + m - 1 for e, m in zip(active.tolist(), (present @ (1 << np.arange(n))).tolist())]
    link, lengths, after = link_bytes_and_lengths(tables, present, active, "nearest")
    short = short_link_bytes(tables, lengths, home_weights(tables, active), after)
    options = rows.options[keys]
    for k, want in enumerate((link, *short, link)):
        assert (options[:, k].reshape(12, n) == want).all()
    assert [rows.cw[k] for k in keys] == link[0::2].tolist()
    longest, shorter = schedtables.arc_lengths(tables, lengths, active)
    assert [rows.longest[k] for k in keys] == longest.tolist()
    weights = home_weights(tables, active)
    moved = [[int(link[2 * a].sum()), int(link[2 * a + 1].sum()), int(short[0][2 * a:2 * a + 2].sum()),
              int(short[1][2 * a:2 * a + 2].sum())] for a in range(6)]
    assert [rows.moved[k] for k in keys] == moved
    # SHORT's bytes x links are each home's bytes times its shorter way's links (`per_shard`'s floor)
    assert [m[2] for m in moved] == (weights[0::2] * shorter).sum(axis=1).tolist()


def test_member_rows_only_for_few_member_sets() -> None:
    target = full_target(12)
    layer = MoeLayerSpec(0, d_model=4, d_ffn=12, num_experts=6, top_k=1)
    plan, cost = make_shard_plan(layer, target, 1, 6), CostModel(target)
    assert tables_for(plan, Ring(tuple(range(12))), cost).members() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.booleans()), min_size=1, max_size=4),
       st.integers(-2, 12))
def test_tie_break_is_its_definition(plans, other_bound: int) -> None:
    """`tie_break` (a loop) takes the plan its definition names: the least estimate (the first),
    or the allowed tied plan with the least link (the first) when it relieves busy links."""
    scores, link_ns, allowed = (list(column) for column in zip(*plans))
    for allow in (allowed, None):
        first = min(range(len(scores)), key=scores.__getitem__)
        tied = [i for i in range(len(scores)) if scores[i] == scores[first] and (allow is None or allow[i])]
        want = first
        if tied:
            relief = min(tied, key=lambda i: (link_ns[i], i))
            bound = max(other_bound, 1)
            if (link_ns[first] >= schedbalance.LINK_BUSY * bound
                    and link_ns[first] - link_ns[relief] >= schedbalance.LINK_RELIEF * bound):
                want = relief
        assert schedbalance.tie_break(scores, link_ns, other_bound, allow) == want


def test_member_table_picks_what_the_sweeps_pick(monkeypatch) -> None:
    """On one small ring `per_shard` reads the streams from the member table (and builds both plans
    whenever either may win): the same choice as from the sweeps, pruned or not, on seeded steps
    with few experts (tables used) from slow links to fast ones."""
    unpatched = schedbalance.per_shard
    calls = Counter()

    def compared(*args, **kwargs):
        got = unpatched(*args, **kwargs)
        tables = args[0]
        if kwargs.get("members") is not None and len(tables) == 1 and args[4] == "nearest":
            calls["tabulated"] += tables[0].members() is not None
        assert got == unpatched(*args, **{**kwargs, "members": None})
        assert got == unpatched(*args, **{**kwargs, "prune": False})
        return got

    monkeypatch.setattr(scheduler, "per_shard", compared)
    policies = [Policy(o, "per-shard", t, r) for o in ORDERS for t in TRAJECTORIES for r in ("all", "one")]
    schedule_bench_like([resolve_target("ring-8"), full_target(6), resolve_target("torus-4x4")], policies,
                        (8, 2, 0, 16), 200)
    assert calls["tabulated"] > 0


def test_member_rows_kept_for_the_last_tables_only(monkeypatch) -> None:
    """A table that built its member rows drops them when `_KEPT_MEMBERS` later tables have built
    theirs (memory), and builds them again, the same, when asked."""
    monkeypatch.setattr(schedtables, "_KEPT_MEMBERS", 2)
    monkeypatch.setattr(schedtables, "_WITH_MEMBERS", type(schedtables._WITH_MEMBERS)())
    target = resolve_target("ring-8")
    cost = CostModel(target)
    tables = [tables_for(make_shard_plan(MoeLayerSpec(0, d_model=4, d_ffn=8 * k, num_experts=4, top_k=1), target, 1, 6),
                         Ring(target.ring), cost) for k in (1, 2, 3)]
    first = tables[0].members()
    assert tables[1].members() is not None and tables[0]._members is first
    assert tables[2].members() is not None and tables[0]._members is False
    again = tables[0].members()
    assert again is not first and (again.options == first.options).all() and again.moved == first.moved
    assert list(schedtables._WITH_MEMBERS.values()) == [tables[2], tables[0]]
