"""A frozen copy of `scheduler.schedule` as it was before the per-call speed-ups of issue 17
item 1 (the per-shard policy evaluating all three candidate plans, numpy per stream), the
reference the faster scheduler must equal exactly on every policy. Not a test module;
tests/test_scheduler_pershard_equivalence.py imports it. Do not "fix" it: it is the old behaviour,
with one deliberate policy change since: the tie rule between equally estimated plans
(`schedbalance.tie_break`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from fsedp_compiler.costmodel import PACKET_BYTES, CostModel
from fsedp_compiler.fsedp.flowcontrol import min_buffers
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW, Ring, route_lengths, walk_order
from fsedp_compiler.fsedp.schedbalance import networks_of, pool_allows, rings_fit, tie_break
from fsedp_compiler.fsedp.schedrefine import REFINE_MAX_WORK, refine
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, StepSchedule, Stream
from fsedp_compiler.fsedp.shardplan import ShardPlan


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
    return int(np.maximum.reduce(a.view(_UNSIGNED.get(a.dtype, a.dtype)), axis=None))


class _Tables:
    """What `schedule` needs that does not depend on the routing, for one (plan, ring, cost): per
    stream id, DRAM time and home bytes (as prefix sums along the walk orders), compute per
    local token count; built once, O(S·(C + N)) for S streams and C channels."""

    def __init__(self, plan: ShardPlan, ring: Ring, cost: CostModel) -> None:
        n, m, streams = ring.size, plan.num_shards, plan.num_streams
        self.plan, self.cost = plan, cost
        busy = [cost.dram_busy_ns(plan.shard_bytes(e)) for e in range(streams)]
        #: [S] an expert's share of DRAM time (its work beyond compute)
        self.dram_share = np.asarray([b * m // max(len(plan.channels), 1) for b in busy], dtype=np.int64)
        channel_busy = np.zeros((streams, len(plan.channels)), dtype=np.int64)
        homes = np.zeros((streams, n), dtype=np.int64)
        for e in range(streams):
            for index, k in plan.channel_counts(e).items():
                channel_busy[e, index] = busy[e] * k
                homes[e, plan.channels[index][0]] += plan.shard_bytes(e) * k
        #: [S, C] DRAM busy time the expert's shards put on each channel
        self.channel_busy = channel_busy
        cw, ccw = list(walk_order(ring, CW)), list(walk_order(ring, CCW))
        # Gathers in walk order: an [A, k·N] gather reshaped to [k·A, N] (or [k·A, 2N] when the
        # walk is doubled to unroll the wrap) interleaves the directions: rows (a, cw), (a, ccw).
        self.walk = {1: np.asarray(cw, dtype=np.int64), 2: np.asarray(cw + ccw, dtype=np.int64)}
        #: doubled walks, reversed (the scan for the next member becomes a forward running max)
        self.walk_rev2 = {1: np.asarray((cw + cw)[::-1], dtype=np.int64),
                          2: np.asarray((cw + cw)[::-1] + (ccw + ccw)[::-1], dtype=np.int64)}
        #: [S, 2N] bytes of the expert's shards homed at each walk index, clockwise then counter-
        home_walk = homes[:, self.walk[2]]
        self.home_bytes = home_walk
        #: [S, 4N] inclusive prefix sums of those bytes over the doubled walk, per direction
        self.home_prefix = np.concatenate([np.cumsum(np.concatenate((h, h), axis=1), axis=1)
                                           for h in (home_walk[:, :n], home_walk[:, n:])], axis=1)
        #: each gathered row's direction
        self.directions = {1: np.full(streams, CW, dtype=np.int64),
                           2: np.tile(np.asarray([CW, CCW], dtype=np.int64), streams)}
        #: rank + 1 of each column of a reversed doubled walk (0 marks "no member yet")
        self.rev_rank = np.arange(1, 2 * n + 1, dtype=np.int64)
        #: per gathered row r, the flat index of the end of its doubled walk: r·2N + 2N
        self.row_end = (np.arange(1, 2 * streams + 1, dtype=np.int64) * (2 * n))[:, None]
        self.pow2 = (np.int64(1) << np.arange(n, dtype=np.int64)) if n <= 62 else None
        self.exact = streams * m * plan.max_shard_bytes < 2**53  # float64 bincount sums exactly
        self._ffn: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * 2

    def ffn(self, shared: bool, rows: np.ndarray, tokens: int) -> np.ndarray:
        """[t] an expert's compute on a member with t local tokens (all M shards), for every t
        in `rows` (none above `tokens`): `CostModel.ffn_ns`, tabulated."""
        table = self._ffn[shared]
        if len(table) <= tokens and len(table) <= int(rows.max()):
            e = self.plan.layer.num_experts if shared else 0
            params, m = self.plan.shard_params(e), self.plan.num_shards
            size = max(int(rows.max()) + 1, 2 * len(table))
            table = self._ffn[shared] = np.asarray([self.cost.ffn_ns(params, t) * m for t in range(size)],
                                                   dtype=np.int64)
        return table


#: `_Tables` by the identity of (plan, ring, cost) (O(1) to look up), then by value (hashing the
#: target is O(N); callers may build a fresh CostModel per step, and layers of one shape share).
_BY_ID: OrderedDict[tuple[int, int, int], tuple[ShardPlan, Ring, CostModel, _Tables]] = OrderedDict()
_BY_VALUE: OrderedDict[tuple, _Tables] = OrderedDict()
_KEPT_BY_ID, _KEPT_BY_VALUE = 256, 16


def _pipelined_ns(plan: ShardPlan, cost: CostModel, per_member: np.ndarray, present: np.ndarray,
                  bounds: tuple[int, int, int], stall: int = 0) -> int:
    """A step's time as a pipeline of DRAM, link and compute stages: each stage's busy time plus what
    must happen before it starts (the first shard's load, its first packet's hop) and after it ends
    (the last shard's remaining stages); the slowest of the three. Plus the DRAM and link latency."""
    shard = plan.max_shard_bytes
    ffn = int(per_member[present].max()) // plan.num_shards if present.any() else 0
    load, link = cost.dram_busy_ns(shard), cost.link_busy_ns(shard)
    packet = cost.link_busy_ns(min(shard, PACKET_BYTES))
    dram_bound, link_bound, compute_bound = bounds
    slowest = max(dram_bound + stall + link + ffn, load + link_bound + ffn, load + packet + compute_bound)
    return slowest + cost.dram_latency_ns + cost.link_latency_ns


def _tables(plan: ShardPlan, ring: Ring, cost: CostModel) -> _Tables:
    """The cached `_Tables` of (plan, ring, cost); the identity cache holds the objects, so an
    id is not reused while cached."""
    key = (id(plan), id(ring), id(cost))
    hit = _BY_ID.get(key)
    if hit is not None and hit[0] is plan and hit[1] is ring and hit[2] is cost:
        return hit[3]
    value = (dataclasses.replace(plan.layer, index=0), plan.num_shards, plan.buffers, plan.channels,
             ring.order, cost)
    tables = _BY_VALUE.get(value)
    if tables is None:
        tables = _BY_VALUE[value] = _Tables(plan, ring, cost)
        if len(_BY_VALUE) > _KEPT_BY_VALUE:
            _BY_VALUE.popitem(last=False)
    _BY_ID[key] = (plan, ring, cost, tables)
    if len(_BY_ID) > _KEPT_BY_ID:
        _BY_ID.popitem(last=False)
    return tables


def _walk_link_bytes(weights: np.ndarray, lengths: np.ndarray, exact: bool) -> np.ndarray:
    """[rows, N] bytes over each link (walk index of the sender) of arcs starting at every walk
    index with `weights` bytes and `lengths` links (< 2N): a difference array, O(rows x N).
    `exact`: the byte sums stay below 2**53, so a float64 bincount adds them exactly."""
    rows, n = weights.shape
    ends = (lengths + np.arange(n)) + (np.arange(rows) * (2 * n))[:, None]
    if exact:
        minus = np.bincount(ends.ravel(), weights=weights.ravel(), minlength=rows * 2 * n).astype(np.int64)
    else:
        minus = np.zeros(rows * 2 * n, dtype=np.int64)
        np.add.at(minus, ends.ravel(), weights.ravel())
    diff = -minus.reshape(rows, 2 * n)
    diff[:, :n] += weights
    walked = np.add.accumulate(diff, axis=1)
    return walked[:, :n] + walked[:, n:]  # the second lap of long arcs onto the first


def _nearest_link_bytes(tables: _Tables, present: np.ndarray, active: np.ndarray, ways: int) -> np.ndarray:
    """[ways·A, N] bytes over each link (walk index of the sender) under the `nearest` rule, rows
    interleaved by direction (`ways` = 1: clockwise only). O(A·N), a few numpy calls.

    A shard homed at walk index h walks from h to the last member strictly before h (ring.py),
    so link w carries every home's bytes except those of the homes in (w, next member after w]:
    load[w] = total - (P[next(w)] - P[w]) with P the prefix sums over the doubled walk."""
    n = present.shape[1]
    rows = ways * len(active)
    # first member at or after v on the doubled walk, scanning it reversed (column j is
    # v = 2N-1-j): the running max of (j + 1) over members is 2N - (that first member)
    doubled = present[:, tables.walk_rev2[ways]].reshape(rows, 2 * n)
    seen = np.maximum.accumulate(doubled * tables.rev_rank, axis=1)
    after = seen[:, n - 1:2 * n - 1][:, ::-1]  # v = w + 1 for w = 0..N-1; first member in (w, w + N]
    prefix = tables.home_prefix[active, :2 * n * ways].reshape(rows, 2 * n)
    return prefix[:, n - 1:n] - prefix.ravel()[tables.row_end[:rows] - after] + prefix[:, :n]


def _link_bytes(tables: _Tables, present: np.ndarray, active: np.ndarray, ways: int, rule: str) -> np.ndarray:
    """[ways·A, N] bytes each active expert sends over each link in walk order, interleaved by
    direction (`ways` = 2) or clockwise only (`ways` = 1), under a trajectory rule."""
    if rule == "nearest":
        return _nearest_link_bytes(tables, present, active, ways)
    n, rows = present.shape[1], ways * len(active)
    walk_members = present[:, tables.walk[ways]].reshape(rows, n)
    lengths = route_lengths(walk_members, tables.directions[ways][:rows], rule)
    weights = tables.home_bytes[active, :n * ways].reshape(rows, n)
    return _walk_link_bytes(weights, lengths, tables.exact)


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
    tables = _tables(plan, ring, cost)
    counts = local_tokens(routing, plan, n)
    active = np.add.reduce(counts, axis=1).nonzero()[0]
    count = len(active)
    if not count:
        return StepSchedule(routing.layer, routing.step, (), 0, (0, 0, 0))
    rows = counts[active]  # [A, N] local tokens of the active experts (ascending ids: shared last)
    tokens = len(routing.token_chiplet)  # no local count exceeds it
    per_member = tables.ffn(False, rows, tokens)[rows]  # [A, N] compute of all M shards per member
    if plan.layer.num_shared:  # shared experts are active whenever any expert is: the last rows
        shared = rows[-plan.layer.num_shared:]
        per_member[-plan.layer.num_shared:] = tables.ffn(True, shared, tokens)[shared]
    compute = np.add.reduce(per_member, axis=0)
    channel_busy = np.add.reduce(tables.channel_busy[active], axis=0)
    # an expert's work: its busiest member's compute plus its share of DRAM time
    work = np.maximum.reduce(per_member, axis=1) + tables.dram_share[active]
    # hot streams: the busiest member computes longer than the busiest channel loads (excess)
    excess = sum(max(0, int(w) - int(b.max())) for w, b in zip(np.maximum.reduce(per_member, axis=1),
                                                                tables.channel_busy[active]))

    by_work = (-work).argsort(kind="stable")  # ties: expert id (active is ascending)
    if policy.order == "paired":
        ordered = by_work[_paired(count)].tolist()
    elif policy.order == "work":
        ordered = by_work.tolist()
    else:
        ordered = list(range(count))

    present = rows > 0
    dram_bound = int(np.maximum.reduce(channel_busy)) + cost.dram_latency_ns
    compute_bound = int(np.maximum.reduce(compute))
    on_ring = [0] * count
    # two virtual networks need a free slot each and one to load into (R4, flowcontrol.py)
    if policy.direction == "cw" or n < 3 or plan.buffers < min_buffers(2):
        link = _link_bytes(tables, present, active, 1, policy.trajectory)
        direction = [CW] * count
        link_bound = cost.link_busy_ns(int(np.maximum.reduce(np.add.reduce(link, axis=0))))
    elif policy.direction == "per-shard":
        hot = excess > 0
        direction, on_ring, link_bound = _per_shard([_tables(plan, r, cost) for r in rings], present, active,
                                                    ordered, policy.trajectory, cost, max(dram_bound, compute_bound),
                                                    hot)
    elif policy.direction == "balanced":
        # each expert's bytes on every link, both ways (rows 2a, 2a + 1), for the choice
        link = _link_bytes(tables, present, active, 2, policy.trajectory)
        direction, peaks = _balance(link, ordered)
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

    rank = np.asarray(ordered)
    chosen = present[rank]
    masks = (chosen @ tables.pow2).tolist() if tables.pow2 is not None else _bitmasks(chosen)
    streams = tuple(map(Stream, active[rank].tolist(), masks, [direction[i] for i in ordered],
                        map(tuple, rows[rank].tolist()), [on_ring[i] for i in ordered]))
    estimate = _pipelined_ns(plan, cost, per_member, present, (dram_bound, link_bound, compute_bound), excess // 2)
    return StepSchedule(routing.layer, routing.step, streams, estimate, (dram_bound, link_bound, compute_bound))


def _per_shard(tables: list[_Tables], present: np.ndarray, active: np.ndarray, ordered: list[int], rule: str,
               cost: CostModel, other_bound: int, hot: bool = False) -> tuple[list[int], list[int], int]:
    """The per-shard policy: of three plans (everything clockwise on R1's ring, whole experts
    balanced on it, each expert CW, CCW, SHORT or SHORT_CCW on any of the rings, balanced), the one
    with the least estimated time: the busiest of DRAM, compute (`other_bound`) and links, plus
    the longest trajectory's hops of one shard (the tail after the last loads). Ties: fewer
    virtual networks. `tables` per ring (R1's first); rings whose extra networks would not fit
    the buffers (R4) are left out. Returns the directions, rings and link bound."""
    count = len(active)
    plan = tables[0].plan
    usable = [t for r, t in enumerate(tables) if r == 0 or rings_fit(plan.buffers, r + 1)]
    link = [_link_bytes(t, present, active, 2, rule) for t in usable]
    shorts = [_short_link_bytes(t, present, active, rule) for t in usable]
    hop_ns = cost.link_ns(plan.max_shard_bytes)
    cw = np.add.reduce(link[0][::2], axis=0)
    balanced, peaks = _balance(link[0], list(ordered))
    shards, on_ring, shard_peaks = _balance_rings(link, [(s[0], s[1]) for s in shorts], ordered)
    way = {CW: 0, CCW: 1, SHORT: 2, SHORT_CCW: 2}
    longest = [s[2] for s in shorts]
    plans = (
        ([CW] * count, [0] * count, int(np.maximum.reduce(cw)), int(np.maximum.reduce(longest[0][:, 0]))),
        (balanced, [0] * count, max(peaks), max(int(longest[0][i, way[d]]) for i, d in enumerate(balanced))),
        (shards, on_ring, shard_peaks,
         max(int(longest[on_ring[i]][i, way[d]]) for i, d in enumerate(shards))),
    )
    # the tie rule of the scheduler (schedbalance.tie_break), applied to all three plans
    scores = [max(other_bound, cost.link_busy_ns(p[2])) + p[3] * hop_ns for p in plans]
    allowed = [pool_allows(plan.buffers, networks_of(p[0], p[1]), hot) for p in plans]
    pick = tie_break(scores, [cost.link_busy_ns(p[2]) for p in plans], other_bound, allowed)
    best = plans[pick]
    small = count * present.shape[1] * len(usable) <= REFINE_MAX_WORK
    if pick == 2 and cost.link_busy_ns(best[2]) > other_bound and small:  # the scheduler's local search
        best = refine(link, [(s[0], s[1]) for s in shorts], best[0], best[1], ordered)
    return best[0], best[1], cost.link_busy_ns(best[2])



def _short_link_bytes(tables: _Tables, present: np.ndarray, active: np.ndarray,
                      rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[2A, N] bytes each active expert sends over each link (walk index of the sender) when every
    shard takes the shorter way round from its home, rows (a, cw), (a, ccw): equally long ways
    clockwise (SHORT), then counter-clockwise (SHORT_CCW); and [A, 3] the most links any of its
    shards walks clockwise, counter-clockwise and the shorter way."""
    n, count = present.shape[1], len(active)
    walk_members = present[:, tables.walk[2]].reshape(2 * count, n)
    lengths = route_lengths(walk_members, tables.directions[2][:2 * count], rule)  # by the home's walk index
    # clockwise walk index = ring position; counter-clockwise = N - 1 - position
    weights = tables.home_bytes[active, :2 * n].reshape(2 * count, n)
    homed = weights > 0
    cw_len, ccw_len = lengths[0::2], lengths[1::2, ::-1]  # by ring position
    longest = np.stack([np.maximum.reduce(np.where(homed[0::2], cw_len, 0), axis=1),
                        np.maximum.reduce(np.where(homed[0::2], ccw_len, 0), axis=1),
                        np.maximum.reduce(np.where(homed[0::2], np.minimum(cw_len, ccw_len), 0), axis=1)], axis=1)
    out = []
    for take_cw in (cw_len <= ccw_len, cw_len < ccw_len):
        part = weights.copy()
        part[0::2] *= take_cw
        part[1::2] *= ~take_cw[:, ::-1]
        out.append(_walk_link_bytes(part, lengths, tables.exact))
    return out[0], out[1], longest


def _balance_rings(both: list[np.ndarray], short: list[tuple[np.ndarray, np.ndarray]],
                   ordered: list[int]) -> tuple[list[int], list[int], int]:
    """`_balance_shards` over several rings: each stream takes the (ring, direction) option that
    keeps the busiest link of any ring lowest (ties: fewer bytes moved, the earlier ring, then CW,
    CCW, SHORT, SHORT_CCW); O(R·A·N), one numpy evaluation of every option per stream. Returns
    directions, rings and the busiest link's bytes."""
    rings, n = len(both), both[0].shape[1]
    ways = (CW, CCW, SHORT, SHORT_CCW)
    # every option's bytes per link: [R, A, 4 ways, 2 directions, N]
    opts = np.zeros((rings, both[0].shape[0] // 2, 4, 2, n), dtype=np.int64)
    for r in range(rings):
        arcs = both[r].reshape(-1, 2, n)
        opts[r, :, 0, 0], opts[r, :, 1, 1] = arcs[:, 0], arcs[:, 1]
        opts[r, :, 2], opts[r, :, 3] = short[r][0].reshape(-1, 2, n), short[r][1].reshape(-1, 2, n)
    added = np.add.reduce(opts.reshape(*opts.shape[:3], -1), axis=3).tolist()  # [R][A][4]: bytes moved
    load = np.zeros((rings, 2, n), dtype=np.int64)
    peak = [0] * rings  # busiest link of each ring so far
    direction = [CW] * len(ordered)
    on_ring = [0] * len(ordered)
    cand = np.empty((rings, 4, 2, n), dtype=np.int64)
    for i in ordered:
        np.add(load[:, None], opts[:, i], out=cand)
        peaks = np.maximum.reduce(cand.reshape(rings, 4, -1), axis=2).tolist()
        best = None
        for r in range(rings):
            others = max(peak[:r] + peak[r + 1:], default=0)
            for w in range(4):
                # SHORT_CCW equal to SHORT ties with it and loses on rank, as if not offered
                key = (max(peaks[r][w], others), added[r][i][w], r, w)
                if best is None or key < best:
                    best = key
        assert best is not None
        _, _, r, w = best
        load[r] += opts[r, i, w]
        peak[r] = peaks[r][w]
        direction[i], on_ring[i] = ways[w], r
    return direction, on_ring, max(peak)


def _bitmasks(present: np.ndarray) -> list[int]:
    """Each row of a [rows, N] bool array as a bitmask (bit c: column c), any N."""
    packed = np.packbits(present, axis=1, bitorder="little")
    width, raw = packed.shape[1], packed.tobytes()
    return [int.from_bytes(raw[i * width:(i + 1) * width], "little") for i in range(present.shape[0])]


def _balance(both: np.ndarray, ordered: list[int]) -> tuple[list[int], tuple[int, int]]:
    """Directions in the global order: each stream takes the direction whose busiest link stays
    lowest given the streams before it (ties: less load so far, then clockwise); O(A·N), a few
    numpy calls per stream. `both` holds each expert's link bytes clockwise (row 2a) and
    counter-clockwise (2a + 1); returns the directions and each direction's busiest link bytes."""
    n = both.shape[1]
    arcs = both.reshape(-1, 2, n)[ordered]  # in the global order
    totals = np.add.reduce(arcs, axis=2).tolist()
    direction = [CW] * len(ordered)
    sum_cw = sum_ccw = 0
    load = np.zeros((2, n), dtype=np.int64)  # bytes per link so far, clockwise and counter-
    nxt = np.empty((2, n), dtype=np.int64)
    for i, arc, (total_cw, total_ccw) in zip(ordered, arcs, totals):
        np.add(load, arc, out=nxt)
        peak_cw, peak_ccw = np.maximum.reduce(nxt, axis=1).tolist()
        if peak_cw < peak_ccw or (peak_cw == peak_ccw and sum_cw <= sum_ccw):
            load[0] = nxt[0]
            sum_cw += total_cw
        else:
            load[1] = nxt[1]
            sum_ccw += total_ccw
            direction[i] = CCW
    peaks = np.maximum.reduce(load, axis=1).tolist()
    return direction, (peaks[0], peaks[1])
