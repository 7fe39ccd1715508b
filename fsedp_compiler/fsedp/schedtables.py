"""What the scheduler computes from the shard plan and ring alone, and the link bytes of many
streams at once.

`Tables` holds, per (plan, ring, cost model), what does not depend on the routing (home bytes as
prefix sums along the walk orders, DRAM and compute per expert), built once and cached. The link
byte functions turn an [A, N] member matrix into each expert's bytes on every link, for every
direction, in a few numpy calls (O(A·N)); `scheduler.py` and `schedbalance.py` use them.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from fsedp_compiler.costmodel import PACKET_BYTES, CostModel
from fsedp_compiler.fsedp.ring import CCW, CW, Ring, route_lengths, walk_order
from fsedp_compiler.fsedp.shardplan import ShardPlan


#: 1-D arrays up to this many entries are reduced in Python (`top`, `total`): a numpy reduction's
#: call costs more than listing and reducing that many ints (and the same above it)
PY_REDUCE_MAX = 64


def top(a: np.ndarray) -> int:
    """The largest entry of a non-empty 1-D integer array, as an int (`np.maximum.reduce`)."""
    return max(a.tolist()) if len(a) <= PY_REDUCE_MAX else int(np.maximum.reduce(a))


def total(a: np.ndarray) -> int:
    """The sum of a 1-D integer array, as an int (`np.add.reduce`)."""
    return sum(a.tolist()) if len(a) <= PY_REDUCE_MAX else int(np.add.reduce(a))


def rows_of(table: np.ndarray, active: np.ndarray) -> np.ndarray:
    """`table[active]` (rows; `active` ascending without repeats, as `schedule` makes it): the
    table itself, not a copy, when every row is active; read only either way by convention."""
    return table if len(active) == len(table) else table.take(active, axis=0)


#: `Tables.ffn` tabulates up to this many local tokens ahead of need
_FFN_AHEAD = 256


#: `columns` gathers by `take` up to this many entries of the result (faster on small arrays,
#: slower on large ones, where a column is a one-byte chunk)
_TAKE_COLUMNS_MAX = 1024


def columns(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`a[:, index]` for a 2-D `a` and a 1-D integer `index`."""
    if len(a) * len(index) <= _TAKE_COLUMNS_MAX:
        return a.take(index, axis=1)
    return a[:, index]


class Tables:
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
        #: [S] the busiest channel's busy time of each expert (whether a step is hot)
        self.channel_peak = (np.maximum.reduce(channel_busy, axis=1) if len(plan.channels)
                             else np.zeros(streams, dtype=np.int64))
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
        #: rank + 1 of each column of a reversed doubled walk (0 marks "no member yet"); int32: the
        #: running max over [A, 2N] of it is ~3x faster than in int64 at N = 128
        self.rev_rank = np.arange(1, 2 * n + 1, dtype=np.int32 if 2 * n < 2**31 else np.int64)
        #: w - N for each walk index w, in `rev_rank`'s dtype (`nearest_link_bytes`)
        self.ahead_shift = self.rev_rank[:n] - (n + 1)
        #: per gathered row r, the flat index of the end of its doubled walk: r·2N + 2N
        self.row_end = _ends(2 * streams, 2 * n, 2 * n)
        #: per row r of [2A, N] (`short_link_bytes`), r·N + N
        self.row_starts = _ends(2 * streams, n, n)
        self.pow2 = (np.int64(1) << np.arange(n, dtype=np.int64)) if n <= 62 else None
        self.exact = streams * m * plan.max_shard_bytes < 2**53  # float64 bincount sums exactly
        self._ffn: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * 2
        homed = home_walk[:, :n] > 0
        self.chiplets = n
        #: [S, N] whether the expert has bytes homed at each ring position; None: every expert everywhere
        self.homed = None if homed.all() else homed
        shard = plan.max_shard_bytes
        # the cost model's constants of a step (`CostModel` is a pure function of the target)
        self.dram_latency_ns = cost.dram_latency_ns
        #: one shard's DRAM load, link transfer and first packet, and the latencies after them
        self.shard_load_ns, self.shard_link_ns = cost.dram_busy_ns(shard), cost.link_busy_ns(shard)
        self.packet_ns = cost.link_busy_ns(min(shard, PACKET_BYTES))
        self.latency_ns = cost.dram_latency_ns + cost.link_latency_ns
        #: one shard's hop, latency included (`per_shard`'s tail estimate)
        self.hop_ns = cost.link_ns(shard)
        self._members: MemberRows | None | bool = False  # `members()`, once built
        # read only: `rows_of` hands them out whole when every expert is active
        for table in (self.dram_share, self.channel_busy, self.channel_peak, self.home_bytes,
                      self.home_prefix, homed):
            table.flags.writeable = False

    def ffn(self, shared: bool, rows: np.ndarray, tokens: int) -> np.ndarray:
        """[t] an expert's compute on a member with t local tokens (all M shards), for every t
        in `rows` (none above `tokens`): `CostModel.ffn_ns`, tabulated."""
        table = self._ffn[shared]
        if len(table) <= tokens and len(table) <= int(rows.max()):
            e = self.plan.layer.num_experts if shared else 0
            params, m = self.plan.shard_params(e), self.plan.num_shards
            # up to `tokens` at once when few (no count above it: no check per call after)
            size = max(int(rows.max()) + 1, 2 * len(table), min(tokens, _FFN_AHEAD) + 1)
            table = self._ffn[shared] = np.asarray([self.cost.ffn_ns(params, t) * m for t in range(size)],
                                                   dtype=np.int64)
        return table

    def members(self) -> MemberRows | None:
        """Every expert's `nearest` options for every member set (`MemberRows`), built on first
        use (kept for the last `_KEPT_MEMBERS` tables that built them); None above
        `MEMBER_ROWS_MAX` rows."""
        if self._members is False:
            self._members = member_rows(self)
            if self._members is not None:
                _WITH_MEMBERS[id(self)] = self
                if len(_WITH_MEMBERS) > _KEPT_MEMBERS:
                    _WITH_MEMBERS.popitem(last=False)[1]._members = False
        return self._members  # type: ignore[return-value]


#: `member_rows` tabulates up to this many (expert, member set) rows: S·(2^N - 1)
MEMBER_ROWS_MAX = 2048

#: The tables whose `MemberRows` are kept, oldest first (about 3 MB each at the limit, and the
#: identity cache may hold many more tables than the by-value one)
_WITH_MEMBERS: OrderedDict[int, Tables] = OrderedDict()
_KEPT_MEMBERS = 16


class MemberRows(NamedTuple):
    """Per (expert e, member bitmask m), at row e·(2^N - 1) + m - 1, what the per-shard policy
    needs of a stream under `nearest` (each row depends on nothing else; `per_shard` then
    gathers rows instead of sweeping)."""

    options: np.ndarray
    """[R, 4, 2N] bytes per link (clockwise, then counter-clockwise links by walk index of the
    sender) of the options: both directions' arcs (`link_bytes`), SHORT and SHORT_CCW
    (`short_link_bytes`), the arcs again (`schedgreedy.balance_both`'s rows); read only"""
    rows: list[np.ndarray]
    """`options` row by row (views, listed once: a step picks its streams' by list index)"""
    cw: list[list[int]]
    """[R][N] the clockwise arcs (row 0's first half)"""
    longest: list[list[int]]
    """[R][3] `arc_lengths`: the most links a shard walks clockwise, counter-clockwise, the shorter way"""
    moved: list[list[int]]
    """[R][4] bytes x links: CW's clockwise arcs, CCW's counter-clockwise, SHORT's, SHORT_CCW's"""


def member_rows(tables: Tables) -> MemberRows | None:
    """`MemberRows` of `tables`, computed by the sweeps themselves over every member set at once
    (O(S·2^N·N)); None when that is more than `MEMBER_ROWS_MAX` rows."""
    n, streams = tables.chiplets, tables.plan.num_streams
    sets = (1 << n) - 1
    if streams * sets > MEMBER_ROWS_MAX:
        return None
    bits = (np.arange(1, sets + 1)[:, None] >> np.arange(n)) & 1  # bit c: chiplet c
    present = np.tile(bits.astype(bool), (streams, 1))
    active = np.repeat(np.arange(streams), sets)
    link, lengths, after = link_bytes_and_lengths(tables, present, active, "nearest")
    longest, _ = arc_lengths(tables, lengths, active)
    short = short_link_bytes(tables, lengths, home_weights(tables, active), after)
    rows = len(active)
    options = np.concatenate([a.reshape(rows, 2 * n) for a in (link, *short, link)], axis=1)
    halves = np.add.reduce(options.reshape(rows, 8, n), axis=2)
    moved = np.stack([halves[:, 0], halves[:, 1], halves[:, 2] + halves[:, 3], halves[:, 4] + halves[:, 5]], axis=1)
    options = options.reshape(rows, 4, 2 * n)
    options.flags.writeable = False
    return MemberRows(options, list(options), link[0::2].tolist(), longest.tolist(), moved.tolist())


def _ends(rows: int, width: int, start: int) -> np.ndarray:
    """[rows, 1]: r·width + start for each row r (the row ends and starts of the sweeps' flat gathers)."""
    return np.arange(start, start + rows * width, width, dtype=np.int64)[:, None]


#: `Tables` by the identity of (plan, ring, cost) (O(1) to look up), then by value (hashing the
#: target is O(N); callers may build a fresh CostModel per step, and layers of one shape share).
_BY_ID: OrderedDict[tuple[int, int, int], tuple[ShardPlan, Ring, CostModel, Tables]] = OrderedDict()
_BY_VALUE: OrderedDict[tuple, Tables] = OrderedDict()
_KEPT_BY_ID, _KEPT_BY_VALUE = 256, 16

def tables_for(plan: ShardPlan, ring: Ring, cost: CostModel) -> Tables:
    """The cached `Tables` of (plan, ring, cost); the identity cache holds the objects, so an
    id is not reused while cached."""
    key = (id(plan), id(ring), id(cost))
    hit = _BY_ID.get(key)
    if hit is not None and hit[0] is plan and hit[1] is ring and hit[2] is cost:
        return hit[3]
    value = (dataclasses.replace(plan.layer, index=0), plan.num_shards, plan.buffers, plan.channels,
             ring.order, cost)
    tables = _BY_VALUE.get(value)
    if tables is None:
        tables = _BY_VALUE[value] = Tables(plan, ring, cost)
        if len(_BY_VALUE) > _KEPT_BY_VALUE:
            _BY_VALUE.popitem(last=False)
    _BY_ID[key] = (plan, ring, cost, tables)
    if len(_BY_ID) > _KEPT_BY_ID:
        _BY_ID.popitem(last=False)
    return tables


def walk_link_bytes(weights: np.ndarray, lengths: np.ndarray, exact: bool) -> np.ndarray:
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


def nearest_link_bytes(tables: Tables, present: np.ndarray, active: np.ndarray, ways: int,
                       lengths: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """[ways·A, N] bytes over each link (walk index of the sender) under the `nearest` rule, rows
    interleaved by direction (`ways` = 1: clockwise only); with `lengths` (`ways` = 2) the links
    each home walks (`route_lengths`'); and the sweep's `after` ([ways·A, N]: 2N - the first
    member strictly after each walk index, on the doubled walk). O(A·N), a few numpy calls.

    A shard homed at walk index h walks from h to the last member strictly before h (ring.py),
    so link w carries every home's bytes except those of the homes in (w, next member after w]:
    load[w] = total - (P[next(w)] - P[w]) with P the prefix sums over the doubled walk."""
    n = present.shape[1]
    rows = ways * len(active)
    # first member at or after v on the doubled walk, scanning it reversed (column j is
    # v = 2N-1-j): the running max of (j + 1) over members is 2N - (that first member)
    # gathers by `take` (fancy indexing costs about three times the call overhead on small arrays)
    doubled = columns(present, tables.walk_rev2[ways]).reshape(rows, 2 * n)
    seen = np.maximum.accumulate(doubled * tables.rev_rank, axis=1)
    after = seen[:, n - 1:2 * n - 1][:, ::-1]  # v = w + 1 for w = 0..N-1; first member in (w, w + N]
    prefix = rows_of(tables.home_prefix, active)
    prefix = (prefix if ways == 2 else prefix[:, :2 * n]).reshape(rows, 2 * n)
    ends = tables.row_end[:rows] if rows <= len(tables.row_end) else _ends(rows, 2 * n, 2 * n)
    link = prefix[:, n - 1:n] - prefix.ravel()[ends - after] + prefix[:, :n]
    if not lengths:
        return link, None, after
    # The next member strictly after w is d = 2N - after[w] - w links on (1 <= d <= N). The last
    # member strictly before a home, where its walk ends, is the next member after the same
    # chiplet in the other direction's walk (walk index N - 1 - w there), d links back: the home
    # walks N - d links (0 when it is the only member). Rows swap pairwise, columns reverse.
    ahead = after + tables.ahead_shift  # after[w] + w - N = N - d
    return link, ahead.reshape(-1, 2, n)[:, ::-1, ::-1].reshape(rows, n), after


def link_bytes(tables: Tables, present: np.ndarray, active: np.ndarray, ways: int, rule: str) -> np.ndarray:
    """[ways·A, N] bytes each active expert sends over each link in walk order, interleaved by
    direction (`ways` = 2) or clockwise only (`ways` = 1), under a trajectory rule."""
    if rule == "nearest":
        return nearest_link_bytes(tables, present, active, ways)[0]
    n, rows = present.shape[1], ways * len(active)
    walk_members = present[:, tables.walk[ways]].reshape(rows, n)
    lengths = route_lengths(walk_members, tables.directions[ways][:rows], rule)
    weights = tables.home_bytes[active, :n * ways].reshape(rows, n)
    return walk_link_bytes(weights, lengths, tables.exact)


def link_bytes_and_lengths(tables: Tables, present: np.ndarray, active: np.ndarray,
                           rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`link_bytes` both ways; the links each shard walks from its home: [2A, N] by the home's
    walk index, rows (a, cw), (a, ccw) (`route_lengths`'); under `nearest` the sweep's `after`
    (for `short_link_bytes`), else None."""
    if rule == "nearest":
        link, lengths, after = nearest_link_bytes(tables, present, active, 2, lengths=True)
        assert lengths is not None
        return link, lengths, after
    n, rows = present.shape[1], 2 * len(active)
    walk_members = present[:, tables.walk[2]].reshape(rows, n)
    lengths = route_lengths(walk_members, tables.directions[2][:rows], rule)
    weights = tables.home_bytes[active, :2 * n].reshape(rows, n)
    return walk_link_bytes(weights, lengths, tables.exact), lengths, None


def arc_lengths(tables: Tables, lengths: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[A, 3] the most links any of an expert's shards walks clockwise, counter-clockwise and the
    shorter way (column 2 <= columns 0 and 1); and [A, N] the links each home walks the shorter
    way, by ring position (0 where it holds no bytes). `lengths`: `link_bytes_and_lengths`'."""
    cw_len, ccw_len = lengths[0::2], lengths[1::2, ::-1]  # by ring position
    ways = np.concatenate((cw_len, ccw_len, np.minimum(cw_len, ccw_len)), axis=1).reshape(len(cw_len), 3, -1)
    if tables.homed is not None:  # lengths are >= 0: a home without bytes counts as 0
        ways *= rows_of(tables.homed, active)[:, None, :]
    return np.maximum.reduce(ways, axis=2), ways[:, 2]


def home_weights(tables: Tables, active: np.ndarray) -> np.ndarray:
    """[2A, N] the bytes homed at each walk index, rows (a, cw), (a, ccw) (clockwise walk index =
    ring position; counter-clockwise = N - 1 - position)."""
    n = tables.chiplets
    return rows_of(tables.home_bytes, active).reshape(2 * len(active), n)  # [A, 2N]: all of a row


#: `short_link_bytes` computes both ways in one stacked array up to this many entries of [2A, N]
_STACKED_MAX = 2048


def short_link_bytes(tables: Tables, lengths: np.ndarray, weights: np.ndarray,
                     after: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[2A, N] bytes each active expert sends over each link (walk index of the sender) when every
    shard takes the shorter way round from its home, rows (a, cw), (a, ccw): equally long ways
    clockwise (SHORT), then counter-clockwise (SHORT_CCW). `lengths`, `weights`, `after`:
    `link_bytes_and_lengths`' and `home_weights`'; with `after` (the `nearest` rule), a sweep."""
    cw_len, ccw_len = lengths[0::2], lengths[1::2, ::-1]  # by ring position
    count, n = cw_len.shape
    rows = 2 * count
    if after is None or rows * n <= _STACKED_MAX:
        # both ways at once, [2 ways, A, 2 directions, N]: fewer numpy calls (small arrays)
        take = np.empty((2, count, 2, n), dtype=bool)
        np.less_equal(cw_len, ccw_len, out=take[0, :, 0])
        np.less(cw_len, ccw_len, out=take[1, :, 0])
        np.logical_not(take[:, :, 0, ::-1], out=take[:, :, 1])
        parts = (weights.reshape(count, 2, n) * take).reshape(2, rows, n)
        if after is None:
            return walk_link_bytes(parts[0], lengths, tables.exact), walk_link_bytes(parts[1], lengths, tables.exact)
    # Under `nearest` a shard's trajectory does not depend on the way its neighbours take: each
    # way's bytes are `nearest_link_bytes`' sweep over only the homes that take it,
    # load[w] = P'[N - 1] - P'[f(w)] + P'[w] with P' the prefix sums over the doubled walk and
    # f(w) = 2N - after[w] in (w, w + N]. With P the prefix sums over one lap and T = P[N - 1],
    # P'[f] = P[f mod N] + T [f >= N], so load[w] = T [f < N] - P[f mod N] + P[w].
    lap = after > n  # f(w) < N
    start = tables.row_starts[:rows] if rows <= len(tables.row_starts) else _ends(rows, n, n)  # row r's r·N, plus N
    flat = np.multiply(lap, n)  # N [f(w) < N]
    flat += start
    flat -= after  # f(w) mod N + r·N
    # in place, take: a gather without the cost of mixed basic and advanced indexing (the method:
    # np.take and np.cumsum add a dispatch each; add.accumulate of int64 is cumsum)
    if rows * n <= _STACKED_MAX:
        prefix = np.add.accumulate(parts, axis=2)
        out = prefix.reshape(2, rows * n).take(flat, axis=1)
        np.subtract(prefix, out, out=out)
        out += prefix[:, :, -1:] * lap
        return out[0], out[1]
    # large: one way at a time (half the memory in flight, faster there)
    homes, mask, ways = weights.reshape(count, 2, n), np.empty((count, 2, n), dtype=bool), []
    for take_cw in (cw_len <= ccw_len, cw_len < ccw_len):
        mask[:, 0] = take_cw
        np.logical_not(take_cw[:, ::-1], out=mask[:, 1])
        prefix = np.multiply(homes, mask).reshape(rows, n)
        np.add.accumulate(prefix, axis=1, out=prefix)
        way = prefix.take(flat)
        np.subtract(prefix, way, out=way)
        way += prefix[:, -1:] * lap
        ways.append(way)
    return ways[0], ways[1]

