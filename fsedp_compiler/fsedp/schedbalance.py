"""The per-shard policy's candidate plans and the greedy balances that build them.

`per_shard` picks, of three plans (everything clockwise on R1's ring, whole experts balanced on
it, each expert CW, CCW, SHORT or SHORT_CCW on any ring, balanced), the one with the least
estimated time, building a plan only when a lower bound of its score (`per_shard`) leaves it a
chance. The balances are sequential in the global order (each stream sees the streams before
it), so their cost is numpy's per-call overhead times the streams: two calls per stream (one
add of every option's candidate loads, one reduction of their halves) and a few Python compares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.flowcontrol import min_buffers
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW
from fsedp_compiler.fsedp.schedtables import (Tables, arc_lengths, home_weights, link_bytes_and_lengths,
                                              short_link_bytes, top, total)

#: a candidate plan: directions, rings, busiest link's bytes, most links of one shard's trajectory
Plan = tuple[list[int], list[int], int, int]


def per_shard(tables: list[Tables], present: np.ndarray, active: np.ndarray, ordered: list[int], rule: str,
              cost: CostModel, other_bound: int, prune: bool = True,
              hot: bool = False) -> tuple[list[int], list[int], int]:
    """The per-shard policy: of three plans (everything clockwise on R1's ring, whole experts
    balanced on it, each expert CW, CCW, SHORT or SHORT_CCW on any of the rings, balanced), the one
    with the least estimated time: the busiest of DRAM, compute (`other_bound`) and links, plus
    the longest trajectory's hops of one shard (the tail after the last loads). Ties: fewer
    virtual networks (the earlier plan), unless a tied plan relieves busy links (`tie_break`)
    and its networks leave the pool room (`pool_allows`; `hot`: a stream computes longer at a
    member than it loads). `tables` per ring (R1's first); rings whose extra networks would not
    fit the buffers (R4, `rings_fit`) are left out. Returns the directions, rings and link bound.

    `prune`: a plan that provably cannot change the choice (its floor above the least score so
    far, or a tie it would lose by index and could not win by relief) is not built (the result
    is the same; `prune=False` builds all three: tests compare the two, and the schedules with
    the frozen scheduler). A plan's score is the busiest of `other_bound` and the links plus the
    hops of its longest trajectory. Its busiest link carries at least the average over the links of its rings of the bytes times
    links its streams move, and a stream moves least, and walks its longest trajectory shortest,
    with its least option: for the balanced plan min(clockwise, counter-clockwise) on R1's ring,
    for the per-shard plan the shorter way (never longer than either direction) on the best
    ring. Sums and maxima over streams of those minima bound the score from below (the floor).
    The plan with the lower floor is built first (of equal floors, see the comment there); a tie
    the later plan would be the earlier plan of is skipped too when the built plan with the
    least links takes it whatever links the later plan has; and when both plans can at best
    tie with the all-clockwise one, one pass over the streams builds both (`_balance_both`)."""
    count = len(active)
    plan = tables[0].plan
    usable = [t for r, t in enumerate(tables) if r == 0 or rings_fit(plan.buffers, r + 1)]
    hop_ns = tables[0].hop_ns
    link, lengths, after = zip(*(link_bytes_and_lengths(t, present, active, rule) for t in usable))
    link0 = link[0]
    longest, shorter = zip(*(arc_lengths(t, h, active) for t, h in zip(usable, lengths)))
    weights: list[np.ndarray] = []  # per ring, `home_weights`, when a plan needs them

    way = {CW: 0, CCW: 1, SHORT: 2, SHORT_CCW: 2}

    longest_rows: list[list[list[int]]] = []  # `longest` as lists, when a plan needs them

    def longest_lists() -> list[list[list[int]]]:
        if not longest_rows:
            longest_rows.extend(h.tolist() for h in longest)
        return longest_rows

    def balanced_plan(directions: list[int], peaks: tuple[int, int]) -> Plan:
        return (directions, [0] * count, max(peaks),
                max([row[way[d]] for row, d in zip(longest_lists()[0], directions)]))

    def shards_plan(directions: list[int], on_ring: list[int], peak: int) -> Plan:
        rows = longest_lists()
        return (directions, on_ring, peak,
                max([rows[r][i][way[d]] for i, (d, r) in enumerate(zip(directions, on_ring))]))

    def balanced() -> Plan:
        return balanced_plan(*balance(link0, list(ordered)))

    short_rows: list[tuple[np.ndarray, np.ndarray]] = []  # `short_link_bytes` per ring, once built

    def shorts() -> list[tuple[np.ndarray, np.ndarray]]:
        if not short_rows:
            weights[:] = weights or [home_weights(t, active) for t in usable]
            short_rows.extend(short_link_bytes(t, h, w, a) for t, h, w, a in zip(usable, lengths, weights, after))
        return short_rows

    def chosen() -> tuple[list[int], list[int], int]:
        pick = _pick(built, other_bound, plan.buffers, hot)
        _, link_ns, (directions, on_ring, _, _) = built[pick]
        if pick == 2 and link_ns > other_bound and count * link0.shape[1] * len(usable) <= REFINE_MAX_WORK:
            # the per-shard plan taken where links bind: its busiest link lowered by local search
            # on the networks it already uses (`refine`; the choice of plan stays the estimate's)
            directions, on_ring, peak = refine(list(link), shorts(), directions, on_ring, ordered)
            link_ns = cost.link_busy_ns(peak)
        return directions, on_ring, link_ns

    def shards() -> Plan:
        return shards_plan(*_balance_rings(list(link), shorts(), ordered))

    def both_plans() -> tuple[Plan, Plan]:
        """The per-shard and balanced plans (one ring) in one pass over the streams."""
        per_shard_choice, balanced_choice = _balance_both(link0, shorts()[0], ordered)
        return shards_plan(*per_shard_choice), balanced_plan(*balanced_choice)

    cw = np.add.reduce(link0[::2], axis=0)
    first = longest[0]
    # the most links of any stream clockwise, counter-clockwise and the shorter way, on R1's ring
    most = np.maximum.reduce(first, axis=0).tolist()
    built: dict[int, tuple[int, int, Plan]] = {}  # plan index -> (score, link ns, plan)

    def add(index: int, p: Plan) -> None:
        # its score: the busiest of the other bound and its links, plus its longest trajectory's hops
        link_ns = cost.link_busy_ns(p[2])
        built[index] = ((other_bound if other_bound > link_ns else link_ns) + p[3] * hop_ns, link_ns, p)

    add(0, ([CW] * count, [0] * count, top(cw), most[0]))
    bound = max(other_bound, 1)

    def needed(floor: int, link_floor: int, index: int) -> bool:
        """Whether a plan whose score is >= `floor` and busiest link >= `link_floor` ns can
        change the choice (`tie_break`) among the plans built so far."""
        least = min([b[0] for b in built.values()])
        if floor != least:
            return floor < least
        tied = [i for i, b in built.items() if b[0] == least]
        if index < min(tied):
            # It would be the earlier plan of the tie, and is taken unless a tied plan relieves
            # it: the built plan r with the least link (ties: the earlier), whatever its link
            # l >= link_floor. l = link(r) makes it the relief itself (earlier index), and the
            # relief condition only gets easier as l grows, so it holds for every l iff at
            # link_floor. Then r is taken, as without it iff r is taken now.
            r = min(tied, key=lambda i: (built[i][1], i))
            relief = built[r][1]
            if not (link_floor > relief and link_floor >= LINK_BUSY * bound
                    and link_floor - relief >= LINK_RELIEF * bound and _allowed(built, r, plan.buffers, hot)):
                return True
            return _pick(built, other_bound, plan.buffers, hot) != r
        link = built[min(tied)][1]
        # it can only be taken as the tied plan with the least busiest link (`tie_break`)
        relief = min([built[i][1] for i in tied])
        # a plan that relieves links needs a second network, and a hot step's pool may refuse it
        return (link >= LINK_BUSY * bound and link - link_floor >= LINK_RELIEF * bound
                and link_floor <= relief and pool_allows(plan.buffers, 2, hot))

    later: list[tuple[int, int, int, Callable[[], Plan]]] = [(0, 0, 1, balanced), (0, 0, 2, shards)]
    if prune:
        # max over streams of min(clockwise, counter-clockwise): between most[2] and most[0]
        either = most[0] if most[2] == most[0] else \
            top(np.minimum(first[:, 0], first[:, 1]))
        shortest = most[2] if len(longest) == 1 else \
            top(np.minimum.reduce([h[:, 2] for h in longest]))
        floor_balanced, floor_shards = other_bound + either * hop_ns, other_bound + shortest * hop_ns
        if not needed(floor_balanced, 0, 1) and not needed(floor_shards, 0, 2):
            return chosen()  # the link terms only raise the floors
        # The busiest link carries at least the average: the bytes times links moved over the
        # links of the plan's rings (2N each). A stream moves the least the shorter way round.
        n = link0.shape[1]
        totals = np.add.reduce(link0, axis=1)  # [2A]: each stream's bytes x links, cw and ccw
        least = total(np.minimum(totals[0::2], totals[1::2]))
        link_balanced = cost.link_busy_ns(-(-least // (2 * n)))
        floor_balanced = max(other_bound, link_balanced) + either * hop_ns
        weights[:] = [home_weights(t, active) for t in usable]
        moved = [np.add.reduce(w[0::2] * h, axis=1) for w, h in zip(weights, shorter)]
        least = total(moved[0] if len(moved) == 1 else np.minimum.reduce(moved))
        link_shards = cost.link_busy_ns(-(-least // (2 * n * len(usable))))
        floor_shards = max(other_bound, link_shards) + shortest * hop_ns
        # The lower floor first: the plan it builds may let the other be skipped (`needed`; a
        # plan skipped stays skippable whatever the other turns out to be). Of equal floors the
        # balanced plan first, unless its link floor is above the per-shard plan's by the
        # relief (LINK_RELIEF of the bound): the per-shard plan built near its link floor then
        # lets the balanced plan be skipped (a tie the balanced plan cannot keep), and the
        # other way round the per-shard plan would be needed as the likely relief.
        relieves = link_balanced - link_shards >= LINK_RELIEF * bound
        later = sorted([(floor_balanced, link_balanced, 1, balanced), (floor_shards, link_shards, 2, shards)],
                       key=lambda c: (c[0], -c[2] if relieves else c[2]))
    for k, (floor, link_floor, index, build) in enumerate(later):
        if index in built or (prune and not needed(floor, link_floor, index)):
            continue
        rest = later[k + 1:]
        if rest and len(usable) == 1 and floor == rest[0][0] == built[0][0] and needed(*rest[0][:3]):
            # The other plan comes next and is likely built too: both can at best tie with the
            # all-clockwise plan (their floors are its score), and it is then skipped only if
            # its link floor is above the link of the one built. One pass builds both for about
            # the numpy calls of one (building a plan that could be skipped changes nothing).
            shards_built, balanced_built = both_plans()
            add(2, shards_built)
            add(1, balanced_built)
            continue
        add(index, build())
    return chosen()


#: Of plans with the same estimate, a later one (more directions) is taken when it lowers the
#: busiest link by at least this fraction of the step's DRAM/compute bound, the links of the
#: earlier one being at least half as busy as that bound: shards queue on a busy link although
#: the estimate (the busiest resource) does not see it, and a direction costs an escape slot
#: (R4) that only pays where it spreads real load.
LINK_RELIEF, LINK_BUSY = 0.1, 0.5

#: In a hot step (a stream computes longer at its busiest member than its shards take to load),
#: shards wait in that member's buffers and the pool binds; then a relieving plan is taken only
#: if the pool holds POOL_SLACK times the slots its networks hold plus a load's two (R4). On
#: ring-8 (Mixtral, 256 skewed tokens, B = 6) the two-way plan that relieves 93%-busy links runs
#: 0.5-6% slower than all clockwise: its second escape slot is one of the four a load may use.
POOL_SLACK = 2


def rings_fit(buffers: int, rings: int) -> bool:
    """Whether the pool has room for `rings` virtual rings: R4's minimum for their 2 x rings
    networks, and beyond R1's ring the same slack as `pool_allows` (every network holds an
    escape slot on every chiplet). On torus-4x4's random tiny-moe steps at B = 6 the second ring
    (four of six slots held) made steps 5% slower (median, 21 of 30 slower; docs/crosscheck.md)."""
    networks = 2 * rings
    return buffers >= min_buffers(networks) and (rings == 1 or buffers >= POOL_SLACK * (networks + 2))


def pool_allows(buffers: int, networks: int, hot: bool) -> bool:
    """Whether a plan on `networks` virtual networks may be taken for link relief (`POOL_SLACK`)."""
    return not hot or buffers >= POOL_SLACK * (networks + 2)


def networks_of(directions: list[int], rings: list[int]) -> int:
    """The virtual networks a plan uses: a (ring, direction) pair each, SHORT ways both of its ring's."""
    return len(network_set(directions, rings))


def network_set(directions: list[int], rings: list[int]) -> set[tuple[int, int]]:
    """The (ring, direction) virtual networks of `networks_of`."""
    used: set[tuple[int, int]] = set()
    for d, r in zip(directions, rings):
        used.update(((r, CW), (r, CCW)) if d in (SHORT, SHORT_CCW) else ((r, d),))
    return used


def tie_break(scores: list[int], link_ns: list[int], other_bound: int,
              allowed: list[bool] | None = None) -> int:
    """The plan to take: the least estimate, the earlier plan (fewer directions) on ties unless a
    tied plan relieves busy links (`LINK_RELIEF`, `LINK_BUSY`); `allowed[i]`: plan i may be taken
    for relief (`pool_allows`; default all)."""
    first = min(range(len(scores)), key=scores.__getitem__)
    tied = [i for i in range(len(scores)) if scores[i] == scores[first] and (allowed is None or allowed[i])]
    if not tied:
        return first
    relief = min(tied, key=lambda i: (link_ns[i], i))
    bound = max(other_bound, 1)
    if link_ns[first] >= LINK_BUSY * bound and link_ns[first] - link_ns[relief] >= LINK_RELIEF * bound:
        return relief
    return first


def _scores_links(built: dict[int, tuple[int, int, Plan]],
                  order: list[int] | None = None) -> tuple[list[int], list[int]]:
    """The scores and link ns of the plans built, in plan order (`tie_break`'s arguments;
    `order`: `sorted(built)` when known)."""
    rows = [built[i] for i in (sorted(built) if order is None else order)]
    return [b[0] for b in rows], [b[1] for b in rows]


def _allowed(built: dict[int, tuple[int, int, Plan]], index: int, buffers: int, hot: bool) -> bool:
    """`pool_allows` for a built plan (its networks counted only in a hot step)."""
    return not hot or pool_allows(buffers, networks_of(built[index][2][0], built[index][2][1]), hot)


def _pick(built: dict[int, tuple[int, int, Plan]], other_bound: int, buffers: int, hot: bool) -> int:
    """The index of the plan `tie_break` takes of those built."""
    order = sorted(built)
    allowed = [_allowed(built, i, buffers, hot) for i in order] if hot else None
    return order[tie_break(*_scores_links(built, order), other_bound, allowed)]


def _balance_rings(both: list[np.ndarray], short: list[tuple[np.ndarray, np.ndarray]],
                   ordered: list[int]) -> tuple[list[int], list[int], int]:
    """The per-shard plan's balance over several rings: each stream takes the (ring, direction)
    option that keeps the busiest link of any ring lowest (ties: fewer bytes moved, the earlier
    ring, then CW, CCW, SHORT, SHORT_CCW); O(R·A·N), one numpy evaluation of every option per
    stream. Returns directions, rings and the busiest link's bytes."""
    if len(both) == 1:
        return _balance_one_ring(both[0], short[0], ordered)
    rings, n = len(both), both[0].shape[1]
    count = both[0].shape[0] // 2
    ways = (CW, CCW, SHORT, SHORT_CCW)
    # every option's bytes per link: [A, R, 4 ways, 2 directions, N], one stream's options contiguous
    opts = np.zeros((count, rings, 4, 2, n), dtype=np.int64)
    for r in range(rings):
        arcs = both[r].reshape(-1, 2, n)
        opts[:, r, 0, 0], opts[:, r, 1, 1] = arcs[:, 0], arcs[:, 1]
        opts[:, r, 2], opts[:, r, 3] = short[r][0].reshape(-1, 2, n), short[r][1].reshape(-1, 2, n)
    opts = opts.reshape(count, rings, 4, 2 * n)
    added = np.add.reduce(opts, axis=3).tolist()  # [A][R][4]: bytes moved
    load = np.zeros((rings, 2 * n), dtype=np.int64)
    spread = load[:, None, :]  # a view: every way's candidate adds to its ring's load
    peak = [0] * rings  # busiest link of each ring so far
    direction = [CW] * len(ordered)
    on_ring = [0] * len(ordered)
    cand = np.empty((rings, 4, 2 * n), dtype=np.int64)
    order = range(4)
    for i in ordered:
        np.add(spread, opts[i], out=cand)
        peaks = np.maximum.reduce(cand, axis=2).tolist()
        moved = added[i]
        keys = []
        for r in range(rings):
            others = max(peak[:r] + peak[r + 1:])
            keys += zip([max(p, others) for p in peaks[r]], moved[r], (r, r, r, r), order)
        # SHORT_CCW equal to SHORT ties with it and loses on rank, as if not offered
        _, _, r, w = min(keys)
        load[r] = cand[r, w]
        peak[r] = peaks[r][w]
        direction[i], on_ring[i] = ways[w], r
    return direction, on_ring, max(peak)


#: Local-search rounds after the greedy per-shard balance (`refine`), and the largest step it
#: runs on (active streams x ring positions x rings). hbm-8 (DeepSeek-MoE-16B, links bind):
#: steps 7.7% / 3.4% / 0.6% faster at 4 / 16 / 64 tokens. On bigger steps the greedy balance's
#: busiest link is within 0.1-0.5% (median) of the local search's (DeepSeek-V3 on 32-128-chiplet
#: rings, 64-256 tokens), which would cost 2-3x the whole schedule() there.
REFINE_ROUNDS = 2
REFINE_MAX_WORK = 4096


def refine(both: list[np.ndarray], short: list[tuple[np.ndarray, np.ndarray]], directions: list[int],
           on_ring: list[int], ordered: list[int]) -> tuple[list[int], list[int], int]:
    """The per-shard plan improved by local search: in the global order, each stream in turn
    retakes the (ring, way) option that, with every other stream's kept, gives the lowest busiest
    link, then the least sum of squared link loads (spreading the load lets a later move lower
    the peak), its current option on ties; `REFINE_ROUNDS` rounds or until none moves. Only
    options on the virtual networks the plan already uses are offered (no new escape slots, R4).
    The busiest link never rises. The greedy balance sees only the streams before each one; this
    sees all. O(rounds·A·R·N). Returns directions, rings and the busiest link's bytes."""
    rings, n = len(both), both[0].shape[1]
    count = both[0].shape[0] // 2
    ways = (CW, CCW, SHORT, SHORT_CCW)
    index = {CW: 0, CCW: 1, SHORT: 2, SHORT_CCW: 3}
    # every option's bytes per link of every ring: [A, 4R options, 2N links per ring x R]
    opts = np.zeros((count, 4 * rings, 2 * n * rings), dtype=np.int64)
    for r in range(rings):
        arcs, links = both[r].reshape(count, 2, n), slice(2 * n * r, 2 * n * (r + 1))
        opts[:, 4 * r, 2 * n * r:2 * n * r + n] = arcs[:, 0]
        opts[:, 4 * r + 1, 2 * n * r + n:2 * n * (r + 1)] = arcs[:, 1]
        opts[:, 4 * r + 2, links] = short[r][0].reshape(count, 2 * n)
        opts[:, 4 * r + 3, links] = short[r][1].reshape(count, 2 * n)
    current = [4 * r + index[d] for d, r in zip(directions, on_ring)]
    used = network_set(directions, on_ring)
    offered = [k for k in range(4 * rings) if network_set([ways[k % 4]], [k // 4]) <= used]
    rows = np.arange(count)
    load = np.add.reduce(opts[rows, current], axis=0)
    for _ in range(REFINE_ROUNDS):
        moved = False
        for i in ordered:
            rest = load - opts[i, current[i]]
            cand = rest + opts[i]
            peaks = np.maximum.reduce(cand, axis=1).tolist()
            spread = cand.astype(np.float64)
            squares = np.einsum("kl,kl->k", spread, spread).tolist()
            best = min(offered, key=lambda k: (peaks[k], squares[k], k != current[i], k))
            if best != current[i]:
                current[i], moved = best, True
            load = rest + opts[i, best]
        if not moved:
            break
    return [ways[k % 4] for k in current], [k // 4 for k in current], int(np.maximum.reduce(load))


def _least_way(m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, moved: list[int], top_cw: int,
               top_ccw: int) -> int:
    """A stream's way on one ring (0 CW, 1 CCW, 2 SHORT, 3 SHORT_CCW): the least (busiest link,
    bytes moved, way), as `min` of the four keys without building the tuples. `m0..m5`: the
    candidate halves' busiest links ([CW's clockwise, CCW's counter-clockwise], SHORT's two,
    SHORT_CCW's two); `top_cw`, `top_ccw`: the busiest link so far each way."""
    h0, h1, h2, h3 = moved
    key, least, w = (m0 if m0 > top_ccw else top_ccw), h0, 0
    k = m1 if m1 > top_cw else top_cw
    if k < key or (k == key and h1 < least):
        key, least, w = k, h1, 1
    k = m2 if m2 > m3 else m3
    if k < key or (k == key and h2 < least):
        key, least, w = k, h2, 2
    k = m4 if m4 > m5 else m5
    if k < key or (k == key and h3 < least):
        w = 3
    return w


def _balance_one_ring(both: np.ndarray, short: tuple[np.ndarray, np.ndarray],
                      ordered: list[int]) -> tuple[list[int], list[int], int]:
    """`_balance_rings` on one ring, the same choices with a quarter less work: CW leaves the
    counter-clockwise links as they are and CCW the clockwise ones, so a stream's options are
    six half-rings of candidate loads ([CW's clockwise, CCW's counter-clockwise], SHORT's two
    halves, SHORT_CCW's two) and each option's busiest link is the larger of its halves' (an
    untouched half's is the busiest link so far that way). Bytes are >= 0, so no other ring's
    busiest link enters the key: (busiest link, bytes moved, way)."""
    n = both.shape[1]
    count = len(both) // 2
    opts = np.concatenate((both.reshape(count, 2 * n), short[0].reshape(count, 2 * n),
                           short[1].reshape(count, 2 * n)), axis=1)  # [A, 6N]
    # each option's bytes moved (CW's clockwise half, CCW's counter-clockwise half, SHORT's and
    # SHORT_CCW's both halves), the key's second entry: one reduceat over the flat rows
    starts = _segments(n, count, 6, (0, 1, 2, 4))
    moved = np.add.reduceat(opts.ravel(), starts).reshape(count, 4).tolist()
    # a stream's options: views (a gathered copy costs a fresh allocation of the whole [A, 6N] per
    # call, page faults and all, when large), listed once (list indexing per stream, no view built)
    rows = list(opts.reshape(count, 3, 2 * n))
    load = np.zeros(2 * n, dtype=np.int64)
    load_cw, load_ccw = load[:n], load[n:]
    cand = np.empty((3, 2 * n), dtype=np.int64)  # every option's candidate loads, reused
    flat, add = cand.ravel(), np.add
    cw_out, ccw_out, short_out, short_ccw_out = cand[0, :n], cand[0, n:], cand[1], cand[2]  # views
    top_cw = top_ccw = 0  # busiest link so far, clockwise and counter-clockwise
    halves, busiest = _segments(n, 1, 6, range(6)), np.maximum.reduceat
    ways = (CW, CCW, SHORT, SHORT_CCW)
    direction = [CW] * len(ordered)
    for i in ordered:
        add(rows[i], load, cand)  # out= positionally
        m0, m1, m2, m3, m4, m5 = busiest(flat, halves).tolist()
        w = _least_way(m0, m1, m2, m3, m4, m5, moved[i], top_cw, top_ccw)
        if w == 0:
            load_cw[:] = cw_out
            top_cw = m0
        elif w == 1:
            load_ccw[:] = ccw_out
            top_ccw = m1
        elif w == 2:
            load[:] = short_out
            top_cw, top_ccw = m2, m3
        else:
            load[:] = short_ccw_out
            top_cw, top_ccw = m4, m5
        direction[i] = ways[w]
    return direction, [0] * len(ordered), max(top_cw, top_ccw)


@functools.lru_cache(maxsize=256)
def _segments(n: int, count: int, width: int, offsets: Sequence[int]) -> np.ndarray:
    """Starts of `reduceat` segments over `count` rows of `width`·N: row a's a·width·N + o·N for
    each o in `offsets` (a shape's constant, kept; read only)."""
    starts = np.add.outer(np.arange(0, width * n * count, width * n), np.multiply(offsets, n)).ravel()
    starts.flags.writeable = False
    return starts


def _balance_both(both: np.ndarray, short: tuple[np.ndarray, np.ndarray], ordered: list[int]) -> tuple[
        tuple[list[int], list[int], int], tuple[list[int], tuple[int, int]]]:
    """`_balance_one_ring(both, short, ordered)` and `balance(both, ordered)` (the per-shard and
    the balanced plan on one ring) in one pass: the same choices, each stream's candidate loads
    of both plans in one numpy add and one reduceat. Rows 0-2 of a stream's [4, 2N] block are
    its CW/CCW, SHORT and SHORT_CCW options against the per-shard plan's load (kept in three
    copies), row 3 its clockwise and counter-clockwise arcs against the balanced plan's load."""
    n = both.shape[1]
    count = len(both) // 2
    arcs = both.reshape(count, 2 * n)
    opts = np.concatenate((arcs, short[0].reshape(count, 2 * n), short[1].reshape(count, 2 * n), arcs),
                          axis=1)  # [A, 8N]
    # bytes moved: CW's clockwise half, CCW's counter-clockwise half, SHORT's, SHORT_CCW's (both
    # halves); the fifth segment (the balanced plan's arcs) closes the fourth and is dropped
    starts = _segments(n, count, 8, (0, 1, 2, 4, 6))
    moved = np.add.reduceat(opts.ravel(), starts).reshape(count, 5)[:, :4].tolist()
    rows = list(opts.reshape(count, 4, 2 * n))  # views, as in `_balance_one_ring`
    load = np.zeros((4, 2 * n), dtype=np.int64)  # the per-shard plan's x 3, then the balanced plan's
    per, bal_cw, bal_ccw = load[:3], load[3, :n], load[3, n:]
    per_cw, per_ccw = per[:, :n], per[:, n:]
    cand = np.empty((4, 2 * n), dtype=np.int64)
    flat, add = cand.ravel(), np.add
    cw_out, ccw_out, short_out, short_ccw_out, cand_bal_cw, cand_bal_ccw = \
        cand[0, :n], cand[0, n:], cand[1], cand[2], cand[3, :n], cand[3, n:]
    halves, busiest = _segments(n, 1, 8, range(8)), np.maximum.reduceat
    ways = (CW, CCW, SHORT, SHORT_CCW)
    top_cw = top_ccw = 0  # the per-shard plan's busiest link so far, each way
    bal_top_cw = bal_top_ccw = sum_cw = sum_ccw = 0  # the balanced plan's, and its bytes moved each way
    direction, bal_direction = [CW] * len(ordered), [CW] * len(ordered)
    for i in ordered:
        add(rows[i], load, cand)  # out= positionally
        m0, m1, m2, m3, m4, m5, b0, b1 = busiest(flat, halves).tolist()
        h = moved[i]
        w = _least_way(m0, m1, m2, m3, m4, m5, h, top_cw, top_ccw)  # the per-shard plan
        if w == 0:
            per_cw[:] = cw_out
            top_cw = m0
        elif w == 1:
            per_ccw[:] = ccw_out
            top_ccw = m1
        elif w == 2:
            per[:] = short_out
            top_cw, top_ccw = m2, m3
        else:
            per[:] = short_ccw_out
            top_cw, top_ccw = m4, m5
        direction[i] = ways[w]
        # the balanced plan (`balance`): the lower candidate peak; ties: less load so far, then CW
        if b0 < b1 or (b0 == b1 and sum_cw <= sum_ccw):
            bal_cw[:] = cand_bal_cw
            bal_top_cw = b0
            sum_cw += h[0]
        else:
            bal_ccw[:] = cand_bal_ccw
            bal_top_ccw = b1
            sum_ccw += h[1]
            bal_direction[i] = CCW
    return (direction, [0] * len(ordered), max(top_cw, top_ccw)), (bal_direction, (bal_top_cw, bal_top_ccw))


def balance(both: np.ndarray, ordered: list[int]) -> tuple[list[int], tuple[int, int]]:
    """Directions in the global order: each stream takes the direction whose busiest link stays
    lowest given the streams before it (ties: less load so far, then clockwise); O(A·N), two
    numpy calls per stream. `both` holds each expert's link bytes clockwise (row 2a) and
    counter-clockwise (2a + 1); returns the directions and each direction's busiest link bytes."""
    n = both.shape[1]
    arcs = both.reshape(-1, 2 * n)[ordered]  # in the global order, clockwise half then counter-
    totals = np.add.reduce(arcs.reshape(-1, 2, n), axis=2).tolist()
    direction = [CW] * len(ordered)
    sum_cw = sum_ccw = 0
    load = np.zeros(2 * n, dtype=np.int64)  # bytes per link so far, clockwise then counter-
    nxt = np.empty(2 * n, dtype=np.int64)
    load_cw, load_ccw, nxt_cw, nxt_ccw = load[:n], load[n:], nxt[:n], nxt[n:]
    halves, busiest = np.asarray([0, n]), np.maximum.reduceat
    for i, arc, (total_cw, total_ccw) in zip(ordered, arcs, totals):
        np.add(load, arc, out=nxt)
        peak_cw, peak_ccw = busiest(nxt, halves).tolist()
        if peak_cw < peak_ccw or (peak_cw == peak_ccw and sum_cw <= sum_ccw):
            load_cw[:] = nxt_cw
            sum_cw += total_cw
        else:
            load_ccw[:] = nxt_ccw
            sum_ccw += total_ccw
            direction[i] = CCW
    peaks = busiest(load, halves).tolist()
    return direction, (peaks[0], peaks[1])
