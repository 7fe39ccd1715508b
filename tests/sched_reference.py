"""A frozen copy of the scheduler and stream expansion as they were before issue 17 (O(A·N²) per
step: `route` walks the ring once per home), the reference the fast versions must equal exactly.
Not a test module; tests/test_sched_speed.py imports it. Do not "fix" it: it is the old behaviour.
"""

from __future__ import annotations

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import CCW, CW, Ring
from fsedp_compiler.fsedp.scheduler import Policy, Stream, StepRouting, StepSchedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import Trip


def route(ring: Ring, home: int, members: int, direction: int, rule: str = "nearest") -> tuple[int, int]:
    """(entry member, links walked) of a shard loaded at `home` under a trajectory rule."""
    if rule == "fullring":
        return first_member(ring, members, home, direction), ring.size - 1
    start = ring.order[0] if rule == "single-entry" else home
    entry = first_member(ring, members, start, direction)
    last = [c for c in walk(ring, entry, ring.size - 1, direction) if members >> c & 1][-1]
    return entry, dist(ring, home, entry, direction) + dist(ring, entry, last, direction)


def first_member(ring: Ring, members: int, start: int, direction: int) -> int:
    p, n = ring.order.index(start), ring.size
    for i in range(n):
        c = ring.order[(p + direction * i) % n]
        if members >> c & 1:
            return c
    raise ValueError("empty member set")


def dist(ring: Ring, a: int, b: int, direction: int) -> int:
    return ((ring.order.index(b) - ring.order.index(a)) * direction) % ring.size


def walk(ring: Ring, start: int, hops: int, direction: int) -> list[int]:
    p, n = ring.order.index(start), ring.size
    return [ring.order[(p + direction * i) % n] for i in range(hops + 1)]


def local_tokens(routing: StepRouting, plan: ShardPlan, num_chiplets: int) -> np.ndarray:
    """[experts + shared, chiplets] local token counts (shared experts: all local tokens)."""
    e_routed = plan.layer.num_experts
    counts = np.zeros((plan.num_streams, num_chiplets), dtype=np.int64)
    k = routing.experts.shape[1]
    np.add.at(counts, (routing.experts.reshape(-1), np.repeat(routing.token_chiplet, k)), 1)
    if plan.layer.num_shared:
        per_chiplet = np.bincount(routing.token_chiplet, minlength=num_chiplets)
        counts[e_routed:] = per_chiplet
    return counts


def stream_link_bytes(ring: Ring, plan: ShardPlan, expert: int, members: int, direction: int,
                      rule: str = "nearest") -> np.ndarray:
    """Bytes this stream sends over each ring link in `direction` (index: position of the sender)."""
    n = ring.size
    diff = np.zeros(n + 1, dtype=np.int64)
    # a shard's arc depends only on its home chiplet: one arc per home, weighted by its shards
    for home, count in plan.home_counts(expert).items():
        size = plan.shard_bytes(expert) * count
        _, length = route(ring, home, members, direction, rule)
        if length == 0:
            continue
        # index links along the walk: sender position p is walk index p (cw) or n-1-p (ccw)
        start = ring.pos(home) if direction == CW else (n - 1 - ring.pos(home))
        end = start + length
        diff[start] += size
        if end <= n:
            diff[end] -= size
        else:
            diff[n] -= size
            diff[0] += size
            diff[end - n] -= size
    walked = np.cumsum(diff[:n])
    if direction == CW:
        return walked
    return walked[::-1].copy()  # back to sender ring positions


def schedule(routing: StepRouting, plan: ShardPlan, ring: Ring, cost: CostModel, policy: Policy = Policy()) -> StepSchedule:
    """Decide one layer step: S_e, direction per expert, global stream order, estimated time."""
    n = ring.size
    counts = local_tokens(routing, plan, n)
    active = np.flatnonzero(counts.sum(axis=1))
    m = plan.num_shards

    work: dict[int, int] = {}
    compute = np.zeros(n, dtype=np.int64)
    channel_busy = np.zeros(len(plan.channels), dtype=np.int64)
    masks: dict[int, int] = {}
    excess = 0  # hot streams: the busiest member computes longer than the busiest channel loads
    for e in active.tolist():
        row = counts[e]
        masks[e] = int(sum(1 << c for c in np.flatnonzero(row).tolist()))
        per_member = [cost.ffn_ns(plan.shard_params(e), int(t)) * m for t in row.tolist()]
        compute += np.asarray(per_member, dtype=np.int64)
        busy = cost.dram_busy_ns(plan.shard_bytes(e))
        for index, k in plan.channel_counts(e).items():
            channel_busy[index] += busy * k
        excess += max(0, max(per_member) - busy * max(plan.channel_counts(e).values()))
        # an expert's work: its busiest member's compute plus its share of DRAM time
        work[e] = max(per_member) + busy * m // max(len(plan.channels), 1)

    by_work = sorted(masks, key=lambda x: (-work[x], x))
    if policy.order == "paired":
        ordered = [by_work[(i // 2) if i % 2 == 0 else len(by_work) - 1 - i // 2] for i in range(len(by_work))]
    elif policy.order == "work":
        ordered = by_work
    else:
        ordered = sorted(masks)
    # directions, in the global order: each stream takes the direction whose busiest link stays
    # lowest given the streams before it (streams close in the order run at the same time)
    link_load = {CW: np.zeros(n, dtype=np.int64), CCW: np.zeros(n, dtype=np.int64)}
    direction: dict[int, int] = {}
    candidates = {e: {d: stream_link_bytes(ring, plan, e, masks[e], d, policy.trajectory) for d in (CW, CCW)}
                  for e in masks} \
        if policy.direction == "balanced" else {}
    for e in ordered:
        # two virtual networks need a free slot each and one to load into (R4)
        if policy.direction == "cw" or n < 3 or plan.buffers < 3:
            d = CW
        else:
            peak = {d: int((link_load[d] + candidates[e][d]).max()) for d in (CW, CCW)}
            d = CW if (peak[CW], link_load[CW].sum()) <= (peak[CCW], link_load[CCW].sum()) else CCW
        direction[e] = d
        link_load[d] += candidates[e][d] if candidates else stream_link_bytes(ring, plan, e, masks[e], d, policy.trajectory)

    dram_bound = int(channel_busy.max()) + cost.dram_latency_ns if len(active) else 0
    link_bound = max(cost.link_busy_ns(int(link_load[d].max())) for d in (CW, CCW)) if len(active) else 0
    compute_bound = int(compute.max()) if len(active) else 0
    if candidates and any(d == CCW for d in direction.values()):
        # both directions split the B buffers (R4), so a DRAM load waits for two free ones in a
        # pool half the size: stream one way whenever that does not make the links the bottleneck
        one_way = np.sum([candidates[e][CW] for e in ordered], axis=0)
        cw_link_bound = cost.link_busy_ns(int(one_way.max()))
        if cw_link_bound <= max(dram_bound, link_bound, compute_bound):
            direction = dict.fromkeys(direction, CW)
            link_bound = cw_link_bound
    streams = tuple(Stream(e, masks[e], direction[e], tuple(int(t) for t in counts[e])) for e in ordered)

    # a pipeline of DRAM, link and compute stages: each stage's busy time plus what comes before
    # it (the first shard's load, one packet's hop) and after it (the last shard's other stages)
    shard = plan.max_shard_bytes
    ffn = max((cost.ffn_ns(plan.shard_params(e), int(t)) for e in active.tolist() for t in counts[e] if t), default=0)
    load, link = cost.dram_busy_ns(shard), cost.link_busy_ns(shard)
    packet = cost.link_busy_ns(min(shard, 4096))
    slowest = max(dram_bound + excess // 2 + link + ffn, load + link_bound + ffn, load + packet + compute_bound)
    estimate = slowest + cost.dram_latency_ns + cost.link_latency_ns if len(active) else 0
    return StepSchedule(routing.layer, routing.step, streams, estimate, (dram_bound, link_bound, compute_bound))


def trajectories(sched: StepSchedule, plan: ShardPlan, ring: Ring, rule: str = "nearest") -> list[Trip]:
    """Every shard's trip, in the global order (streams in order, shards by index); `rule` is a
    trajectory rule of `ring.TRAJECTORIES` (FSE-DP: nearest)."""
    trips: list[Trip] = []
    for index, stream in enumerate(sched.streams):
        e, d, members = stream.expert, stream.direction, stream.members
        size, params = plan.shard_bytes(e), plan.shard_params(e)
        for j in range(plan.num_shards):
            home, channel = plan.home(e, j)
            entry, hops = route(ring, home, members, d, rule)
            approach = dist(ring, home, entry, d)
            path = tuple(walk(ring, home, hops, d))
            # after its entry a shard computes at every member once (it may pass members before)
            computes = tuple(i >= approach and bool(members >> c & 1) for i, c in enumerate(path))
            trips.append(Trip(len(trips), index, e, j, channel, d, path, computes, size, params))
    return trips


def stream_counts(plan: ShardPlan, ring: Ring, expert: int, members: int, direction: int,
                  rule: str = "nearest") -> tuple[dict[tuple[int, int], int], list[int], list[int]]:
    """The shard counts of one stream (loads, visits, ends of `StreamCounts`), from each home's arc."""
    n = ring.size
    loads = {plan.channels[index]: k for index, k in plan.channel_counts(expert).items() if k}
    per_home = plan.home_counts(expert)
    visits_walk = [0] * (n + 1)  # difference array over walk index w (ring position along `direction`)
    ends = [0] * n
    laps = 0
    for home, k in per_home.items():
        _, length = route(ring, home, members, direction, rule)
        last = ring.order[(ring.pos(home) + direction * length) % n]
        full, rest = divmod(length + 1, n)  # the arc covers length + 1 chiplets, maybe lapping
        laps += full * k
        start = ring.pos(home) if direction > 0 else n - 1 - ring.pos(home)
        end = start + rest
        visits_walk[start] += k
        if end <= n:
            visits_walk[end] -= k
        else:
            visits_walk[n] -= k
            visits_walk[0] += k
            visits_walk[end - n] -= k
        ends[last] += k
    visits = [0] * n
    acc = laps
    for w in range(n):
        acc += visits_walk[w]
        pos = w if direction > 0 else n - 1 - w
        visits[ring.order[pos]] = acc
    return loads, visits, ends
