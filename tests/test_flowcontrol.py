"""R4 flow control (`flowcontrol.py`): random steps with shards going both ways round one shared
pool never deadlock, compute every (expert, shard) once at every member and stay within B."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.crosscheck.trips import trip_via
from fsedp_compiler.fsedp.flowcontrol import Pools, bubble_home, min_buffers
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, schedule
from fsedp_compiler.fsedp.shardplan import make_shard_plan
from fsedp_compiler.fsedp.streaming import FFN, DeadlockError, execute, trajectories
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target_files import load_preset


def mixed_step(preset: str, experts: int, g: int, buffers: int, seed: int, tokens: int):
    """A scheduled step whose shards then each pick a random direction (both networks busy)."""
    target = load_preset(preset)
    n = target.num_chiplets
    layer = MoeLayerSpec(0, d_model=8, d_ffn=4 * g * n, num_experts=experts, top_k=min(2, experts))
    plan = make_shard_plan(layer, target, g, buffers)
    ring, cost = Ring(target.ring), CostModel(target)
    rng = np.random.default_rng(seed)
    ex = np.array([rng.choice(experts, layer.top_k, replace=False) for _ in range(tokens)], dtype=np.int32)
    routing = StepRouting(ex, np.ones(ex.shape, np.float32), rng.integers(0, n, tokens).astype(np.int32))
    sched = schedule(routing, plan, ring, cost, Policy(direction="cw"))
    trips = []
    for t in trajectories(sched, plan, ring):
        members = sched.streams[t.stream].members
        d = int(rng.choice([1, -1]))
        trips.append(trip_via(ring, t, members, d, ring.first_member(members, t.path[0], d)))
    return plan, ring, cost, sched, trips


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["paper-2x2", "ring-8", "mesh-4x4", "hbm-8"]), st.integers(1, 8), st.integers(1, 3),
       st.integers(0, 2), st.integers(0, 2**20), st.integers(1, 24))
def test_random_mixed_steps_never_deadlock_and_compute_everything_once(preset, experts, g, extra, seed,
                                                                       tokens) -> None:
    plan, ring, cost, sched, trips = mixed_step(preset, experts, g, min_buffers(2) + extra, seed, tokens)
    timeline = execute(trips, plan, ring, cost, {s.expert: s.tokens for s in sched.streams})
    done = Counter((trips[op.trip].expert, trips[op.trip].shard, op.chiplet) for op in timeline.ops if op.kind == FFN)
    wanted = {(s.expert, j, c) for s in sched.streams for j in range(plan.num_shards) for c in s.member_list()}
    assert set(done) == wanted and set(done.values()) <= {1}
    assert max(timeline.peak_buffers) <= plan.buffers


def test_one_plain_pool_deadlocks_where_the_rules_do_not() -> None:
    """Round 1's bubble rule on one pool for both directions (two free to load, one to forward)
    deadlocks on some of these steps; R4's escape slots and bubbles run all of them."""
    plain_deadlocks = 0
    for seed in range(60):
        plan, ring, cost, sched, trips = mixed_step("ring-8", 6, 2, 3, seed, 24)
        tokens = {s.expert: s.tokens for s in sched.streams}
        execute(trips, plan, ring, cost, tokens)
        try:
            execute(trips, plan, ring, cost, tokens, shared_pool=True)
        except DeadlockError:
            plain_deadlocks += 1
    assert plain_deadlocks > 0


def test_the_invariant_holds_and_a_bubble_moves_upstream() -> None:
    pools = Pools(3, 3, {0, 1}, home=2)
    assert pools.holds == [2, 2, 2]  # escape slots (at chiplet 2 merged with both bubbles)
    pools.take(1, 0, 10)  # a load takes the one slot nobody holds; network 0 has a shard here now,
    pools.take(1, 0, 10)  # so its escape slot is free for another load
    assert not pools.can_inject(1, 1) and pools.can_forward(1, 1)  # network 1's escape slot stays
    pools.take(2, 0, 10, upstream=("x", 1))  # a forward into network 0's escape slot at 2
    assert pools.bubble[0] == 2
    pools.take(2, 0, 10, upstream=("y", 1))  # nothing else is free for it: it takes the bubble
    assert pools.bubble[0] == -1 and pools.moving[0] == ("y", 1)
    assert not pools.can_forward(2, 0) and pools.can_forward(2, 1)
    pools.release(1, 0, 10, ("y", 1))  # the bubble lands where the shard came from
    assert pools.bubble[0] == 1
    assert all(pools.free[c] >= pools.holds[c] for c in range(3))


@pytest.mark.parametrize("preset,dram,home", [("paper-2x2", (0, 1, 2, 3), 0), ("paper-4x4", (0, 3, 12, 15), 14)])
def test_bubble_home_avoids_dram_chiplets(preset, dram, home) -> None:
    target = load_preset(preset)
    assert tuple(target.dram_at) == dram
    assert bubble_home(target.num_chiplets, target.dram_at) == home


def test_cut_through_forwards_on_the_first_packet() -> None:
    """R7: on ring-8, a shard loaded at chiplet 0 for a member 3 hops on arrives after one DRAM
    load, two packet times and one shard time (each with its link latency), not three shard times."""
    from fsedp_compiler.fsedp.scheduler import StepSchedule, Stream
    from fsedp_compiler.fsedp.streaming import PACKET_BYTES, head_ns, walk_ns

    target = load_preset("ring-8")
    layer = MoeLayerSpec(0, d_model=64, d_ffn=8 * 64, num_experts=1, top_k=1)
    plan = make_shard_plan(layer, target, 1, 6)
    ring, cost = Ring(target.ring), CostModel(target)
    assert plan.shard_bytes(0) > PACKET_BYTES
    tokens = (0, 0, 0, 1, 0, 0, 0, 0)
    sched = StepSchedule(0, 0, (Stream(0, 1 << 3, 1, tokens),), 0)
    (trip,) = [dataclasses.replace(t, seq=0) for t in trajectories(sched, plan, ring) if t.path[0] == 0]
    timeline = execute([trip], plan, ring, cost, {0: tokens})  # that shard alone
    sends = sorted(op.start for op in timeline.ops if op.kind == "send" and op.trip == trip.seq)
    assert len(sends) == 3 and sends[1] - sends[0] == sends[2] - sends[1] == head_ns(cost, trip.nbytes)
    ffn = next(op for op in timeline.ops if op.kind == FFN)
    assert ffn.start == sends[0] + walk_ns(cost, trip.nbytes, 3) < sends[0] + 3 * cost.link_ns(trip.nbytes)
