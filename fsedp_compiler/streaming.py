"""Shard trajectories of a scheduled step (R1–R5) and their data-driven execution.

`trajectories` expands a `StepSchedule` into one trip per shard: loaded at its DRAM home, it
walks the virtual ring in its expert's direction, entering S_e at the first member it reaches
(R2), visiting every member once in ring order and only forwarding elsewhere (R3), and ends at the
last member (R5). `execute` runs those trips on the engines of every chiplet with the cost model:
each DRAM channel, link direction and compute engine serves one op at a time, first come first
served; a chiplet has B shard buffers; a DRAM load needs two free buffers and a forward one free
buffer downstream (R4, bubble flow control); a buffer is freed once its shard is computed (if
this chiplet is a member) and forwarded (if it goes on). When a step streams in both ring
directions the B buffers are split between them (`buffer_split`): bubble flow control is
deadlock-free on each unidirectional ring, but two directions sharing one pool can deadlock
(a full chiplet waiting on a full neighbour that waits on it). The resulting per-engine op order is what
`expand-dataflow` writes as static instruction streams, and its makespan is the step time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .costmodel import CostModel
from .errors import FsedpError
from .ring import Ring
from .scheduler import StepSchedule
from .shardplan import ShardPlan


@dataclass(frozen=True)
class Trip:
    """One shard's trajectory in a step: `path[0]` is its DRAM home; computes where `computes` is set."""

    seq: int
    expert: int
    shard: int
    channel: int
    direction: int
    path: tuple[int, ...]
    computes: tuple[bool, ...]
    nbytes: int
    params: int


def trajectories(sched: StepSchedule, plan: ShardPlan, ring: Ring) -> list[Trip]:
    """Every shard's trip, in the global order (streams in order, shards by index)."""
    trips: list[Trip] = []
    for stream in sched.streams:
        e, d, members = stream.expert, stream.direction, stream.members
        size, params = plan.shard_bytes(e), plan.shard_params(e)
        for j in range(plan.num_shards):
            home, channel = plan.home(e, j)
            entry = ring.first_member(members, home, d)
            visits = ring.members_in_order(members, entry, d)
            hops = ring.dist(home, entry, d) + ring.dist(entry, visits[-1], d)
            path = tuple(ring.walk(home, hops, d))
            computes = tuple(bool(members >> c & 1) and i >= path.index(entry) for i, c in enumerate(path))
            trips.append(Trip(len(trips), e, j, channel, d, path, computes, size, params))
    return trips


#: Op kinds of a timeline record.
LOAD, SEND, FFN = "load", "send", "ffn"


@dataclass(frozen=True)
class OpRecord:
    """One executed op: kind, chiplet, engine unit (channel or direction), the trip, hop, times."""

    kind: str
    chiplet: int
    unit: int
    trip: int
    hop: int
    start: int
    end: int


@dataclass
class StepTimeline:
    ops: list[OpRecord]
    makespan: int
    peak_buffers: list[int]


class DeadlockError(FsedpError):
    """No op can start while shards remain: reported with what each chiplet waits for."""

    exit_code = 3


def buffer_split(buffers: int, directions: set[int]) -> dict[int, int]:
    """Shard buffers per ring direction: all to one direction, else ceil/floor halves (each >= 2)."""
    if len(directions) <= 1:
        return {d: buffers for d in (directions or {1})}
    return {1: (buffers + 1) // 2, -1: buffers // 2}


def execute(trips: list[Trip], plan: ShardPlan, ring: Ring, cost: CostModel, tokens: dict[int, tuple[int, ...]]) -> StepTimeline:
    """Run one step's trips data-driven (see module docstring); `tokens[expert][chiplet]` local tokens."""
    n = ring.size
    split = buffer_split(plan.buffers, {t.direction for t in trips})
    free = [dict(split) for _ in range(n)]
    used = [0] * n
    peak = [0] * n
    dma_queue: dict[tuple[int, int], list[int]] = {}
    for t in trips:
        dma_queue.setdefault((t.path[0], t.channel), []).append(t.seq)
    dma_head = {key: 0 for key in dma_queue}
    dma_busy: dict[tuple[int, int], bool] = {key: False for key in dma_queue}
    # per chiplet FIFO of (ready time, seq, trip, hop) waiting for compute / for the link in a direction
    compute_q: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    link_q: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    compute_busy = [False] * n
    link_busy: dict[tuple[int, int], bool] = {}
    pending: dict[tuple[int, int], int] = {}  # (trip, hop) -> uses left before the buffer is freed
    events: list[tuple[int, int, str, int, int, int]] = []
    ops: list[OpRecord] = []
    counter = 0
    now = 0
    remaining = len(trips)

    def push(time: int, kind: str, a: int, b: int, c: int = 0) -> None:
        nonlocal counter
        heapq.heappush(events, (time, counter, kind, a, b, c))
        counter += 1

    def take_buffer(c: int, d: int) -> None:
        free[c][d] -= 1
        used[c] += 1
        peak[c] = max(peak[c], used[c])

    def arrive(trip: Trip, hop: int, time: int) -> None:
        c = trip.path[hop]
        uses = 0
        if trip.computes[hop]:
            heapq.heappush(compute_q[c], (time, trip.seq, hop))
            uses += 1
        if hop + 1 < len(trip.path):
            q = link_q.setdefault((c, trip.direction), [])
            heapq.heappush(q, (time, trip.seq, hop))
            link_busy.setdefault((c, trip.direction), False)
            uses += 1
        pending[(trip.seq, hop)] = uses

    def use_done(trip: Trip, hop: int) -> None:
        nonlocal remaining
        key = (trip.seq, hop)
        pending[key] -= 1
        if pending[key] == 0:
            del pending[key]
            free[trip.path[hop]][trip.direction] += 1
            used[trip.path[hop]] -= 1
            if hop == len(trip.path) - 1:
                remaining -= 1

    def kick() -> None:
        """Start every op that can start now (engines in a fixed order, for determinism)."""
        progress = True
        while progress:
            progress = False
            for key in sorted(dma_queue):
                c, ch = key
                if dma_busy[key] or dma_head[key] >= len(dma_queue[key]):
                    continue
                trip = trips[dma_queue[key][dma_head[key]]]
                if free[c][trip.direction] < 2:
                    continue
                dma_head[key] += 1
                take_buffer(c, trip.direction)
                busy = cost.dram_busy_ns(trip.nbytes)
                dma_busy[key] = True
                ops.append(OpRecord(LOAD, c, ch, trip.seq, 0, now, now + busy))
                push(now + busy, "dma_free", c, ch)
                push(now + busy + cost.dram_latency_ns, "arrive", trip.seq, 0)
                progress = True
            for key in sorted(link_q):
                c, d = key
                q = link_q[key]
                if link_busy[key] or not q or q[0][0] > now:
                    continue
                _, seq, hop = q[0]
                trip = trips[seq]
                nxt = trip.path[hop + 1]
                if free[nxt][d] < 1:
                    continue
                heapq.heappop(q)
                take_buffer(nxt, d)
                busy = cost.link_busy_ns(trip.nbytes)
                link_busy[key] = True
                ops.append(OpRecord(SEND, c, d, seq, hop, now, now + busy))
                push(now + busy, "sent", seq, hop, d)
                push(now + busy + cost.link_latency_ns, "arrive", seq, hop + 1)
                progress = True
            for c in range(n):
                q = compute_q[c]
                if compute_busy[c] or not q or q[0][0] > now:
                    continue
                _, seq, hop = heapq.heappop(q)
                trip = trips[seq]
                busy = cost.ffn_ns(trip.params, tokens[trip.expert][c])
                compute_busy[c] = True
                ops.append(OpRecord(FFN, c, 0, seq, hop, now, now + busy))
                push(now + busy, "computed", seq, hop)
                progress = True

    kick()
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, _, kind, a, b, c = heapq.heappop(events)
            if kind == "dma_free":
                dma_busy[(a, b)] = False
            elif kind == "arrive":
                arrive(trips[a], b, now)
            elif kind == "sent":
                link_busy[(trips[a].path[b], c)] = False
                use_done(trips[a], b)
            elif kind == "computed":
                compute_busy[trips[a].path[b]] = False
                use_done(trips[a], b)
        kick()
    if remaining:
        raise DeadlockError(_deadlock_report(trips, dma_queue, dma_head, free, compute_q, link_q))
    return StepTimeline(ops, now, peak)


def _deadlock_report(trips, dma_queue, dma_head, free, compute_q, link_q) -> str:
    lines = ["deadlock: no op can start while shards remain"]
    for (c, ch), queue in sorted(dma_queue.items()):
        if dma_head[(c, ch)] < len(queue):
            t = trips[queue[dma_head[(c, ch)]]]
            lines.append(f"  chiplet {c} dma{ch}: LOAD e{t.expert}s{t.shard} waits for 2 free buffers "
                         f"(has {free[c][t.direction]})")
    for (c, d), q in sorted(link_q.items()):
        if q:
            t = trips[q[0][1]]
            nxt = t.path[q[0][2] + 1]
            lines.append(f"  chiplet {c} link {'cw' if d > 0 else 'ccw'}: SEND e{t.expert}s{t.shard} waits for a "
                         f"free buffer on chiplet {nxt} (has {free[nxt][d]})")
    return "\n".join(lines)
