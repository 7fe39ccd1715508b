"""The lightweight FSE-DP scheduler: one layer step's streams, directions and global order.

`schedule` is a pure function run at compile time (static mode, per routed step) and by the
controller at run time (dynamic mode, inside the simulator). Per step it:

1. counts each expert's local tokens per chiplet; the needing set S_e is the chiplets with a
   token routed to e (shared experts: every chiplet holding a token);
2. orders the streams (R6): by work, heaviest first, interleaved with the lightest ("paired":
   heaviest, lightest, 2nd heaviest, 2nd lightest, ...) so DRAM, links and compute stay busy together;
3. picks a direction per expert on the virtual ring, in that order, the one that keeps the
   busiest link least loaded (streams close in the order run at the same time); then, because
   each direction in use holds an escape slot on every chiplet (R4, `flowcontrol.py`), streams
   everything one way whenever that does not make the links the bottleneck (the per-shard
   policy, `schedbalance.py`: the best of three candidate plans, on every virtual ring);
4. estimates the step time as a pipeline of DRAM, link and compute stages (`_pipelined_ns`):
   each stage's busiest unit plus the fill before and the drain after it.

Cost: O(T·k) to count tokens, then O(A·N + A log A) for A active experts on N chiplets, however
finely experts are cut: every step is an [A, N] numpy operation except the sort and the direction
loop (two numpy calls per expert). A shard's trajectory depends only on its home, and all homes'
link loads come from one sweep per (expert, direction) over the doubled walk (see `ring.py`) and
prefix sums of the bytes homed along it (`schedtables.py`). What does not depend on the routing
(per expert: home bytes, channel load, compute per local token count; the cost model's per-shard
constants) is tabulated once per (plan, ring, cost model); on small rings (S·(2^N - 1) member
sets at most `schedtables.MEMBER_ROWS_MAX`) so are every member set's link bytes, which a step
then gathers instead of sweeping. No solver. `benchmarks/sched_bench.py` measures it;
tests/sched_pershard_reference.py is the slower version it must equal.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.flowcontrol import min_buffers
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, Ring, routes
from fsedp_compiler.fsedp.schedbalance import balance, per_shard
from fsedp_compiler.fsedp.schedtables import PY_REDUCE_MAX, Tables, link_bytes, rows_of, tables_for, top
from fsedp_compiler.fsedp.shardplan import ShardPlan



@dataclass(frozen=True)
class Policy:
    """The knobs of the scheduler (the ablations of FSE-DP switch them off)."""

    order: str = "paired"
    direction: str = "per-shard"
    trajectory: str = "nearest"
    rings: str = "all"
    """all: the per-shard policy may put streams on every virtual ring of the target; one: R1's only"""


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
    ring: int = 0
    """which of the target's virtual rings it follows (R1 generalised; 0: R1's)"""

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
            if s.ring:
                h.update(f"@{s.ring}".encode())
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
    """[experts + shared, chiplets] local token counts (shared experts: all local tokens); O(T·k)."""
    n, streams = num_chiplets, plan.num_streams
    experts = np.asarray(routing.experts)
    where = np.asarray(routing.token_chiplet)
    # a chiplet id out of range would land in another expert's row: refuse it (negatives as
    # unsigned are huge); an expert id out of range lengthens the count or is negative (bincount)
    if where.size and _umax(where) >= n:
        raise IndexError("the routing names a chiplet outside the target")
    if streams * n >= 2**31:
        experts = experts.astype(np.int64)
    index = where[:, None] + experts * n  # e·N + chiplet, per (token, slot)
    counts = np.bincount(index.ravel(), minlength=streams * n)
    if len(counts) > streams * n:
        raise IndexError("the routing names an expert outside the shard plan")
    counts = counts.reshape(streams, n)
    if plan.layer.num_shared:
        counts[plan.layer.num_experts:] = np.bincount(where, minlength=n)
    return counts


_UNSIGNED = {np.dtype(f"i{b}"): np.dtype(f"u{b}") for b in (1, 2, 4, 8)}


def _umax(a: np.ndarray) -> int:
    """The largest entry, negatives counting as huge (viewed as unsigned): one range check."""
    if a.dtype.kind == "i" and a.size <= PY_REDUCE_MAX:  # in Python, as `top`
        values = a.ravel().tolist()
        if min(values) >= 0:
            return max(values)
        return max([v for v in values if v < 0]) + (1 << 8 * a.dtype.itemsize)
    return top(a.reshape(-1).view(_UNSIGNED.get(a.dtype, a.dtype)))


def stream_link_bytes(ring: Ring, plan: ShardPlan, expert: int, members: int, direction: int,
                      rule: str = "nearest") -> np.ndarray:
    """Bytes this stream sends over each ring link in `direction` (index: position of the sender);
    O(homes + N) from every home's arc (`ring.routes`)."""
    n = ring.size
    _, lengths = routes(ring, members, direction, rule)
    diff = [0] * (2 * n + 1)  # difference array over walk indices; arcs end before 2n (no double lap)
    for home, count in plan.home_counts(expert).items():
        start = ring.pos(home) if direction == CW else n - 1 - ring.pos(home)
        size = plan.shard_bytes(expert) * count
        diff[start] += size
        diff[start + lengths[home]] -= size
    walked = np.cumsum(diff[:2 * n], dtype=np.int64)
    walked = walked[:n] + walked[n:]  # fold the second lap of long arcs onto the first
    if direction == CW:
        return walked
    return walked[::-1].copy()  # back to sender ring positions




def _pipelined_ns(tables: Tables, busiest: int, bounds: tuple[int, int, int], stall: int = 0) -> int:
    """A step's time as a pipeline of DRAM, link and compute stages: each stage's busy time plus what
    must happen before it starts (the first shard's load, its first packet's hop) and after it ends
    (the last shard's remaining stages); the slowest of the three. Plus the DRAM and link latency.
    `busiest`: the most compute of an active expert on one member (all M shards); `stall`: DRAM
    time lost to full buffers behind hot streams (half the `hot_excess`)."""
    # a non-member's compute is ffn_ns(0) = 0, so the busiest member of all is the busiest of S_e
    ffn = busiest // tables.plan.num_shards
    load, link, packet = tables.shard_load_ns, tables.shard_link_ns, tables.packet_ns
    dram_bound, link_bound, compute_bound = bounds
    slowest = max(dram_bound + stall + link + ffn, load + link_bound + ffn, load + packet + compute_bound)
    return slowest + tables.latency_ns


def hot_excess(busiest: np.ndarray, stream_load: np.ndarray) -> int:
    """How much longer *hot* streams compute on their busiest member than their busiest channel
    loads them (`stream_load`), summed: such a stream fills that member's buffers and the
    channels stall until they drain. The estimate counts half of it as DRAM stall, a
    calibration: on 200 steps of ten model/preset pairs (1-256 tokens, uniform and skewed) that
    takes it from 0.855-1.001x of the step the machine measures to 0.92-1.01x; all of the
    excess overshoots to 1.06x where the buffers absorb part of it."""
    if len(busiest) <= PY_REDUCE_MAX:  # fewer calls in Python (as `top`)
        return sum([b - s for b, s in zip(busiest.tolist(), stream_load.tolist()) if b > s])
    return int(np.add.reduce(np.maximum(busiest - stream_load, 0)))


@functools.lru_cache(maxsize=1024)
def _paired(count: int) -> np.ndarray:
    """Positions in the by-work order of: heaviest, lightest, 2nd heaviest, 2nd lightest, ..."""
    i = np.arange(count)
    return np.where(i % 2 == 0, i // 2, count - 1 - i // 2)


def schedule(routing: StepRouting, plan: ShardPlan, ring: Ring | Sequence[Ring], cost: CostModel,
             policy: Policy = Policy()) -> StepSchedule:
    """Decide one layer step: S_e, ring and direction per expert, global stream order, estimated
    time. `ring`: the target's virtual rings (or R1's ring alone); the per-shard policy may use
    all of them, the others R1's. Vectorised over the A active experts: O(T·k + R·A·N + A log A)
    for R rings, no per-home ring walks."""
    rings = [ring] if isinstance(ring, Ring) else list(ring)
    ring = rings[0]
    if policy.rings == "one":
        rings = rings[:1]
    n = ring.size
    tables = tables_for(plan, ring, cost)
    counts = local_tokens(routing, plan, n)
    active = np.add.reduce(counts, axis=1).nonzero()[0]
    count = len(active)
    if not count:
        return StepSchedule(routing.layer, routing.step, (), 0, (0, 0, 0))
    # row gathers by `take`, not `a[active]` (the same rows, about a third of the call overhead),
    # none when every expert is active
    rows = rows_of(counts, active)  # [A, N] local tokens of the active experts (ascending ids: shared last)
    tokens = len(routing.token_chiplet)  # no local count exceeds it
    per_member = tables.ffn(False, rows, tokens).take(rows)  # [A, N] compute of all M shards per member
    if plan.layer.num_shared:  # shared experts are active whenever any expert is: the last rows
        shared = rows[-plan.layer.num_shared:]
        per_member[-plan.layer.num_shared:] = tables.ffn(True, shared, tokens).take(shared)
    compute = np.add.reduce(per_member, axis=0)
    channel_rows = rows_of(tables.channel_busy, active)  # [A, C]
    channel_busy = np.add.reduce(channel_rows, axis=0)
    # an expert's work: its busiest member's compute plus its share of DRAM time
    busiest = np.maximum.reduce(per_member, axis=1)
    work = busiest + rows_of(tables.dram_share, active)
    # hot: a stream computes longer on its busiest member than its busiest channel loads it
    excess = hot_excess(busiest, rows_of(tables.channel_peak, active))
    hot = excess > 0

    by_work = (-work).argsort(kind="stable")  # ties: expert id (active is ascending)
    if policy.order == "paired":
        ordered = by_work.take(_paired(count)).tolist()
    elif policy.order == "work":
        ordered = by_work.tolist()
    else:
        ordered = list(range(count))

    present = rows.astype(bool)  # counts are >= 0: rows > 0
    dram_bound = top(channel_busy) + tables.dram_latency_ns
    compute_bound = top(compute)
    on_ring = [0] * count
    # each stream's S_e as a bitmask (bit c: chiplet c)
    masks = (present @ tables.pow2).tolist() if tables.pow2 is not None else _bitmasks(present)
    # two virtual networks need a free slot each and one to load into (R4, flowcontrol.py)
    if policy.direction == "cw" or n < 3 or plan.buffers < min_buffers(2):
        link = link_bytes(tables, present, active, 1, policy.trajectory)
        direction = [CW] * count
        link_bound = cost.link_busy_ns(int(np.maximum.reduce(np.add.reduce(link, axis=0))))
    elif policy.direction == "per-shard":
        direction, on_ring, link_bound = per_shard([tables] + [tables_for(plan, r, cost) for r in rings[1:]], present,
                                                    active, ordered, policy.trajectory, cost,
                                                    max(dram_bound, compute_bound), hot=hot, members=masks)
    elif policy.direction == "balanced":
        # each expert's bytes on every link, both ways (rows 2a, 2a + 1), for the choice
        link = link_bytes(tables, present, active, 2, policy.trajectory)
        direction, peaks = balance(link, ordered)
        link_bound = max(cost.link_busy_ns(peaks[0]), cost.link_busy_ns(peaks[1]))
        if CCW in direction or SHORT in direction:
            # a second direction holds a second escape slot on every chiplet (R4): stream one
            # way whenever that does not make the links the bottleneck
            cw_link_bound = cost.link_busy_ns(int(np.maximum.reduce(np.add.reduce(link[::2], axis=0))))
            if cw_link_bound <= max(dram_bound, link_bound, compute_bound):
                direction = [CW] * count
                link_bound = cw_link_bound
    else:
        raise KeyError(policy.direction)

    # gathered in the global order as Python lists (a few numpy calls for any A)
    ids, local = active.tolist(), rows.tolist()
    streams = _streams(ordered, ids, masks, direction, local, on_ring)
    estimate = _pipelined_ns(tables, top(busiest), (dram_bound, link_bound, compute_bound), excess // 2)
    sched = object.__new__(StepSchedule)  # as `_streams` builds streams
    sched.__dict__.update({"layer": routing.layer, "step": routing.step, "streams": streams, "estimated_ns": estimate,
                           "bounds": (dram_bound, link_bound, compute_bound)})
    return sched


def _streams(ordered: list[int], ids: list[int], masks: list[int], direction: list[int], local: list[list[int]],
             on_ring: list[int]) -> tuple[Stream, ...]:
    """`Stream(ids[i], masks[i], direction[i], tuple(local[i]), on_ring[i])` for each i in
    `ordered`, without the frozen dataclass's `__init__` (an `object.__setattr__` per field, half
    the cost of building a stream; a step builds one per active expert): the instance dict is
    filled directly, which is all that `__init__` does (no `__post_init__`)."""
    new, out = object.__new__, []
    append = out.append
    for i in ordered:
        s = new(Stream)
        # a dict display, not keyword arguments: no kwargs dict built for the call
        s.__dict__.update({"expert": ids[i], "members": masks[i], "direction": direction[i], "tokens": tuple(local[i]),
                           "ring": on_ring[i]})
        append(s)
    return tuple(out)


def _bitmasks(present: np.ndarray) -> list[int]:
    """Each row of a [rows, N] bool array as a bitmask (bit c: column c), any N."""
    packed = np.packbits(present, axis=1, bitorder="little")
    width, raw = packed.shape[1], packed.tobytes()
    return [int.from_bytes(raw[i * width:(i + 1) * width], "little") for i in range(present.shape[0])]


