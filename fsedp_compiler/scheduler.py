"""The lightweight FSE-DP scheduler: one layer step's streams, directions and global order.

`schedule` is a pure function run at compile time (static mode, per routed step) and by the
controller at run time (dynamic mode, inside the simulator). Per step it:

1. counts each expert's local tokens per chiplet; the needing set S_e is the chiplets with a
   token routed to e (shared experts: every chiplet holding a token);
2. orders the streams (R6): by work, heaviest first, interleaved with the lightest ("paired":
   heaviest, lightest, 2nd heaviest, 2nd lightest, ...) so DRAM, links and compute stay busy together;
3. picks a direction per expert on the virtual ring, in that order, the one that keeps the
   busiest link least loaded (streams close in the order run at the same time); then, because
   two directions split the B buffers (R4) and a DRAM load needs two free in its direction's
   half, streams everything one way whenever that does not make the links the bottleneck;
4. estimates the step time from the busiest DRAM channel, link and compute engine.

Cost: O(T·k) to count tokens, then O(M + N) per active expert (M = g·N shards) and a sort:
O(A·N + A log A) for A active experts and fixed g. No solver.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .costmodel import CostModel
from .ring import CCW, CW, Ring, route
from .shardplan import ShardPlan

ORDERS = ("paired", "work", "id")
DIRECTIONS = ("balanced", "cw")


@dataclass(frozen=True)
class Policy:
    """The knobs of the scheduler (the ablations of FSE-DP switch them off)."""

    order: str = "paired"
    direction: str = "balanced"
    trajectory: str = "nearest"


@dataclass(frozen=True)
class StepRouting:
    """The routing of one layer step: each token's top-k experts and gates, and its chiplet."""

    experts: np.ndarray
    weights: np.ndarray
    token_chiplet: np.ndarray
    layer: int = 0
    step: int = 0


@dataclass(frozen=True)
class Stream:
    """One expert's shards streaming on the ring: needing set S_e (bitmask), direction, tokens."""

    expert: int
    members: int
    direction: int
    tokens: tuple[int, ...]
    """Local tokens routed to the expert, per chiplet (0 outside S_e)."""

    def member_list(self) -> list[int]:
        return [c for c, t in enumerate(self.tokens) if t]


@dataclass(frozen=True)
class StepSchedule:
    """The scheduler's decisions for one layer step; hashable, so static and dynamic runs compare."""

    layer: int
    step: int
    streams: tuple[Stream, ...]
    """In the global order (R6) every chiplet follows."""
    estimated_ns: int
    bounds: tuple[int, int, int] = field(default=(0, 0, 0), compare=False)
    """(DRAM, link, compute) busy time of the busiest resource of each kind."""

    def digest(self) -> str:
        """A stable hash of the decisions (not of the estimate)."""
        h = hashlib.sha256(f"{self.layer},{self.step}".encode())
        for s in self.streams:
            h.update(f";{s.expert},{s.members},{s.direction}".encode())
        return h.hexdigest()[:16]

    def injection_order(self, plan: ShardPlan) -> dict[int, list[tuple[int, int, int]]]:
        """Per chiplet, the (expert, shard, channel) DRAM loads it issues, in global order."""
        out: dict[int, list[tuple[int, int, int]]] = {}
        for s in self.streams:
            for j in range(plan.num_shards):
                chiplet, channel = plan.home(s.expert, j)
                out.setdefault(chiplet, []).append((s.expert, j, channel))
        return out


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
    for e in active.tolist():
        row = counts[e]
        masks[e] = int(sum(1 << c for c in np.flatnonzero(row).tolist()))
        per_member = [cost.ffn_ns(plan.shard_params(e), int(t)) * m for t in row.tolist()]
        compute += np.asarray(per_member, dtype=np.int64)
        busy = cost.dram_busy_ns(plan.shard_bytes(e))
        for index, k in plan.channel_counts(e).items():
            channel_busy[index] += busy * k
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
        # both directions need >= 2 buffers each (R4 per direction, see streaming.buffer_split)
        if policy.direction == "cw" or n < 3 or plan.buffers < 4:
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

    fill = cost.dram_latency_ns + cost.link_latency_ns if len(active) else 0
    estimate = max(dram_bound, link_bound, compute_bound) + fill
    return StepSchedule(routing.layer, routing.step, streams, estimate, (dram_bound, link_bound, compute_bound))
