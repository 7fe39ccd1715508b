"""Shard trajectories of a scheduled step (R1-R5) and their execution on the chiplets' engines.

`trajectories` expands a `StepSchedule` into one trip per shard: loaded at its DRAM home, it
walks the virtual ring in its expert's direction (a SHORT expert: each shard the shorter way round
from its home), entering S_e at the first member it reaches
(R2), visiting every member once in ring order and only forwarding elsewhere (R3), and ends at
the last member (R5). Both take every home's route from one O(N) sweep per stream
(`ring.routes`).

`execute` runs the trips with the cost model, as a static program runs: every DRAM channel,
directed link and compute engine serves one op at a time (DMA in the stream table's order,
links and compute the shard that became ready first); a chiplet has one pool of B shard
buffers shared by both directions under R4's admission rules (`flowcontrol.py`: a forward may
use its direction's escape slot or critical bubble, a DRAM load only a slot neither holds); a
buffer is freed once its shard is computed (if this chiplet is a member) and forwarded (if it
goes on). A shard that goes on from a chiplet is sent on once its first packet is there (R7,
cut-through, `PACKET_BYTES`), computed there once all of it is. A deadlock (which the rules
exclude) would be reported (`DeadlockError`, exit code 3), never hung.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from fsedp_compiler.costmodel import PACKET_BYTES, CostModel
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.flowcontrol import Pools, bubble_home, network_of
from fsedp_compiler.fsedp.ring import Ring, directed_routes
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.shardplan import ShardPlan


@dataclass(frozen=True)
class Trip:
    """One shard's trajectory in a step: `path[0]` is its DRAM home; computes where `computes` is set."""

    seq: int
    stream: int
    expert: int
    shard: int
    channel: int
    direction: int
    path: tuple[int, ...]
    computes: tuple[bool, ...]
    nbytes: int
    params: int
    ring: int = 0
    """the virtual ring it walks (`Stream.ring`)"""


def trajectories(sched: StepSchedule, plan: ShardPlan, ring: Ring | Sequence[Ring],
                 rule: str = "nearest") -> list[Trip]:
    """Every shard's trip, in the global order (streams in order, shards by index); `ring`: the
    target's virtual rings (or R1's alone); `rule` is a trajectory rule of `ring.TRAJECTORIES`
    (FSE-DP: nearest)."""
    rings = [ring] if isinstance(ring, Ring) else list(ring)
    trips: list[Trip] = []
    for index, stream in enumerate(sched.streams):
        e, members = stream.expert, stream.members
        ring = rings[stream.ring]
        size, params = plan.shard_bytes(e), plan.shard_params(e)
        ways, entries, lengths = directed_routes(ring, members, stream.direction, rule)
        arcs: dict[int, tuple[tuple[int, ...], tuple[bool, ...]]] = {}  # per home: shards from it share it
        for j in range(plan.num_shards):
            home, channel = plan.home(e, j)
            d = ways[home]
            arc = arcs.get(home)
            if arc is None:
                approach = ring.dist(home, entries[home], d)
                path = tuple(ring.walk(home, lengths[home], d))
                # after its entry a shard computes at every member once (it may pass members before)
                computes = tuple(i >= approach and bool(members >> c & 1) for i, c in enumerate(path))
                arc = arcs[home] = (path, computes)
            trips.append(Trip(len(trips), index, e, j, channel, d, arc[0], arc[1], size, params, stream.ring))
    return trips


#: which part of a shard an arrival is (`execute`)
WHOLE, HEAD_PART, TAIL_PART = 0, 1, 2


def head_ns(cost: CostModel, nbytes: int) -> int:
    """From a send's start until the shard may go on from the next chiplet (R7: its first
    packet is there; a shard of one packet or less: all of it)."""
    return cost.link_ns(min(nbytes, PACKET_BYTES))


def walk_ns(cost: CostModel, nbytes: int, hops: int) -> int:
    """The least time from a shard's first send until all of it is `hops` links on, each hop
    forwarding it as soon as its first packet arrives (R7)."""
    return (hops - 1) * head_ns(cost, nbytes) + cost.link_ns(nbytes) if hops > 0 else 0

#: Op kinds of a timeline record.
LOAD, SEND, FFN = "load", "send", "ffn"


class OpRecord(NamedTuple):
    """One executed op: kind, chiplet, engine unit (DRAM channel, or the receiving chiplet of a
    SEND), the trip, hop, times. A NamedTuple: the simulator makes millions of them."""

    kind: str
    chiplet: int
    unit: int
    trip: int
    hop: int
    start: int
    end: int


@dataclass
class StepTimeline:
    """The ops one step ran (SEND units are the receiving chiplet), its makespan and, per
    chiplet, the most shard buffers and shard bytes held at once."""

    ops: list[OpRecord]
    makespan: int
    peak_buffers: list[int]
    peak_bytes: list[int]


class DeadlockError(FsedpError):
    """No op can start while shards remain: reported with what each chiplet waits for."""

    exit_code = 3


def engine_loads(trips: list[Trip]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Per DMA engine (chiplet, channel): its loads in table order, then shard order."""
    dma: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for t in trips:
        dma.setdefault((t.path[0], t.channel), []).append((t.seq, 0))
    return dma


def engine_ranges(trips: list[Trip]) -> tuple[dict[tuple[int, int], Counter], dict[int, Counter]]:
    """How many shards of each stream every directed link (chiplet, next) forwards and every compute
    engine (chiplet) processes: the `n` of the SENDS and FFNS ranges of a static program."""
    link: dict[tuple[int, int], Counter] = {}
    compute: dict[int, Counter] = {}
    for t in trips:
        for hop, c in enumerate(t.path):
            if hop + 1 < len(t.path):
                link.setdefault((c, t.path[hop + 1]), Counter())[t.stream] += 1
            if t.computes[hop]:
                compute.setdefault(c, Counter())[t.stream] += 1
    return link, compute


def execute(trips: list[Trip], plan: ShardPlan, ring: Ring, cost: CostModel, tokens: dict[int, tuple[int, ...]],
            shared_pool: bool = False) -> StepTimeline:
    """Run one step's trips as a static program runs (see the module docstring): DMA engines
    load in table then shard order (R6); links and compute engines serve the shard that became
    ready first (ties: table order, then shard). `tokens[expert][chiplet]` are the local tokens.

    Links and compute engines are deliberately *not* in strict table order: an engine that
    finished one stream's range and took the next stream's shards into a neighbour's buffers
    while that neighbour still waits to inject the earlier stream starves the bubble rule (R4)
    and deadlocks; serving ready shards first keeps every buffer draining.

    `shared_pool` drops R4's escape slots and bubbles: one plain pool of B for both directions
    in which a load needs two free buffers and a forward one (it can deadlock); the cross-check
    uses it for a schedule without the rules (`crosscheck_free.shortest_way`)."""
    n = ring.size
    vn = [network_of(t.direction, t.ring) for t in trips]
    home = bubble_home(n, sorted({c for c, _ in plan.channels}))
    pools = Pools(n, plan.buffers, set(vn), home, plain=shared_pool)
    dma_q = engine_loads(trips)
    dma_head = dict.fromkeys(dma_q, 0)
    link_todo, compute_todo = engine_ranges(trips)
    # per engine: ready shards as (ready time, stream, seq, hop)
    link_ready: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {k: [] for k in link_todo}
    compute_ready: dict[int, list[tuple[int, int, int, int]]] = {k: [] for k in compute_todo}
    dma_at: dict[int, list[tuple[int, int]]] = {}
    for key in dma_q:
        dma_at.setdefault(key[0], []).append(key)
    links_into: dict[int, list[tuple[int, int]]] = {}
    for key in link_ready:
        links_into.setdefault(key[1], []).append(key)
    dma_busy: set[tuple[int, int]] = set()
    link_busy: set[tuple[int, int]] = set()
    compute_busy: set[int] = set()
    pending: dict[tuple[int, int], int] = {}  # (trip, hop) -> uses left before the buffer is freed
    events: list[tuple[int, int, int, int, int, int]] = []
    ops: list[OpRecord] = []
    # engines whose next op may have become startable, as (rank, key): links, then compute, then
    # DMA last, so a load's "two free buffers" (R4) counts every buffer taken at the same instant
    dirty: set[tuple] = {(2, key) for key in dma_q}
    counter = 0
    now = 0
    remaining = len(trips)
    DMA_FREE, ARRIVE, SENT, COMPUTED, HEAD = 0, 1, 2, 3, 4
    # cut-through (R7): a shard that goes on is forwarded once its first packet has arrived
    head_busy = cost.link_busy_ns(PACKET_BYTES)  # == head_ns - latency for shards above a packet
    dram_lat, link_lat = cost.dram_latency_ns, cost.link_latency_ns
    dram_busy_of: dict[int, int] = {}
    link_busy_of: dict[int, int] = {}
    ffn_of: dict[tuple[int, int], int] = {}

    def push(time: int, kind: int, a: int, b: int, c: int = 0) -> None:
        nonlocal counter
        heapq.heappush(events, (time, counter, kind, a, b, c))
        counter += 1

    def arrive(trip: Trip, hop: int, part: int = WHOLE) -> None:
        """The shard reaches chiplet path[hop]: its first packet (HEAD_PART: it may go on), the
        rest (TAIL_PART: it may be computed) or all of it at once (WHOLE)."""
        c = trip.path[hop]
        if part != HEAD_PART and trip.computes[hop]:
            heapq.heappush(compute_ready[c], (now, trip.stream, trip.seq, hop))
            dirty.add((1, c))
        if part == TAIL_PART:
            return
        uses = int(trip.computes[hop])
        if hop + 1 < len(trip.path):
            key = (c, trip.path[hop + 1])
            heapq.heappush(link_ready[key], (now, trip.stream, trip.seq, hop))
            dirty.add((0, key))
            uses += 1
        pending[(trip.seq, hop)] = uses
        if uses == 0:  # a full-ring trip ending at a chiplet outside S_e: nothing left to do here
            pending[(trip.seq, hop)] = 1
            use_done(trip, hop)

    def use_done(trip: Trip, hop: int) -> None:
        nonlocal remaining
        key = (trip.seq, hop)
        pending[key] -= 1
        if pending[key] == 0:
            del pending[key]
            c = trip.path[hop]
            pools.release(c, vn[trip.seq], trip.nbytes, key)
            dirty.update((2, k) for k in dma_at.get(c, ()))
            dirty.update((0, k) for k in links_into.get(c, ()))
            if hop == len(trip.path) - 1:
                remaining -= 1

    def start_dma(key: tuple[int, int]) -> None:
        c, ch = key
        queue = dma_q[key]
        if key in dma_busy or dma_head[key] >= len(queue):
            return
        trip = trips[queue[dma_head[key]][0]]
        v = vn[trip.seq]
        if not pools.can_inject(c, v):
            return
        dma_head[key] += 1
        pools.take(c, v, trip.nbytes)
        length = dram_busy_of.get(trip.nbytes)
        if length is None:
            length = dram_busy_of[trip.nbytes] = cost.dram_busy_ns(trip.nbytes)
        dma_busy.add(key)
        ops.append(OpRecord(LOAD, c, ch, trip.seq, 0, now, now + length))
        push(now + length, DMA_FREE, c, ch)
        push(now + length + dram_lat, ARRIVE, trip.seq, 0)

    def start_link(key: tuple[int, int]) -> None:
        ready = link_ready[key]
        if key in link_busy or not ready:
            return
        c, nxt = key
        _, _, seq, hop = ready[0]
        trip = trips[seq]
        v = vn[seq]
        if not pools.can_forward(nxt, v):
            return
        heapq.heappop(ready)
        link_todo[key][trip.stream] -= 1
        pools.take(nxt, v, trip.nbytes, (seq, hop))
        length = link_busy_of.get(trip.nbytes)
        if length is None:
            length = link_busy_of[trip.nbytes] = cost.link_busy_ns(trip.nbytes)
        link_busy.add(key)
        ops.append(OpRecord(SEND, c, nxt, seq, hop, now, now + length))
        push(now + length, SENT, seq, hop, nxt)
        if hop + 2 < len(trip.path) and trip.nbytes > PACKET_BYTES:  # it goes on from nxt: cut-through
            push(now + head_busy + link_lat, HEAD, seq, hop + 1)
            push(now + length + link_lat, ARRIVE, seq, hop + 1, TAIL_PART)
        else:
            push(now + length + link_lat, ARRIVE, seq, hop + 1)

    def start_compute(c: int) -> None:
        ready = compute_ready[c]
        if c in compute_busy or not ready:
            return
        _, _, seq, hop = heapq.heappop(ready)
        trip = trips[seq]
        compute_todo[c][trip.stream] -= 1
        k = (trip.params, tokens[trip.expert][c])
        length = ffn_of.get(k)
        if length is None:
            length = ffn_of[k] = cost.ffn_ns(*k)
        compute_busy.add(c)
        ops.append(OpRecord(FFN, c, 0, seq, hop, now, now + length))
        push(now + length, COMPUTED, seq, hop)

    starters = (start_link, start_compute, start_dma)

    def kick() -> None:
        """One pass, in a fixed engine order, over the engines an event may have enabled
        (starting an op only takes buffers, so it never enables another engine)."""
        for rank, key in sorted(dirty):
            starters[rank](key)
        dirty.clear()

    kick()
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, _, kind, a, b, c = heapq.heappop(events)
            if kind == DMA_FREE:
                dma_busy.discard((a, b))
                dirty.add((2, (a, b)))
            elif kind == ARRIVE:
                arrive(trips[a], b, c)
            elif kind == HEAD:
                arrive(trips[a], b, HEAD_PART)
            elif kind == SENT:
                key = (trips[a].path[b], c)
                link_busy.discard(key)
                dirty.add((0, key))
                use_done(trips[a], b)
            else:
                chiplet = trips[a].path[b]
                compute_busy.discard(chiplet)
                dirty.add((1, chiplet))
                use_done(trips[a], b)
        kick()
    if remaining:
        raise DeadlockError(_deadlock_report(trips, dma_q, dma_head, pools, link_todo, compute_todo))
    return StepTimeline(ops, now, pools.peak, pools.peak_bytes)


def _deadlock_report(trips, dma_q, dma_head, pools, link_todo, compute_todo) -> str:
    lines = ["deadlock: no engine can start its next op while shards remain"]
    for (c, ch), queue in sorted(dma_q.items()):
        if dma_head[(c, ch)] < len(queue):
            t = trips[queue[dma_head[(c, ch)]][0]]
            lines.append(f"  chiplet {c} dma{ch}: LOAD e{t.expert}s{t.shard} waits for a free buffer "
                         f"(has {pools.free[c]}, {pools.holds[c]} held for forwards)")
    for (c, nxt), todo in sorted(link_todo.items()):
        left = {s: k for s, k in todo.items() if k}
        if left:
            lines.append(f"  chiplet {c} link to {nxt}: {sum(left.values())} sends left, "
                         f"(free buffers here: {pools.free[c]})")
    for c, todo in sorted(compute_todo.items()):
        left = {s: k for s, k in todo.items() if k}
        if left:
            lines.append(f"  chiplet {c} compute: {sum(left.values())} FFNs left, waiting for shards to arrive")
    return "\n".join(lines)
