"""The greedy balances behind the per-shard policy's candidate plans (`schedbalance.py`).

Each is sequential in the global order (a stream sees the link loads of the streams before it),
so its cost is numpy's per-call overhead times the streams: a stream's options are evaluated in
one add and one reduction, then chosen with a few Python compares.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW


def balance_rings(both: list[np.ndarray], short: list[tuple[np.ndarray, np.ndarray]],
                  ordered: list[int]) -> tuple[list[int], list[int], int]:
    """The per-shard plan's balance over several rings: each stream takes the (ring, direction)
    option that keeps the busiest link of any ring lowest (ties: fewer bytes moved, the earlier
    ring, then CW, CCW, SHORT, SHORT_CCW); O(R·A·N), one numpy evaluation of every option per
    stream. Returns directions, rings and the busiest link's bytes."""
    if len(both) == 1:
        return balance_one_ring(both[0], short[0], ordered)
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


def least_way(m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, moved: list[int], top_cw: int,
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


def balance_one_ring(both: np.ndarray, short: tuple[np.ndarray, np.ndarray],
                     ordered: list[int]) -> tuple[list[int], list[int], int]:
    """`balance_rings` on one ring, the same choices with a quarter less work: CW leaves the
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
    starts = segments(n, count, 6, (0, 1, 2, 4))
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
    halves, busiest = segments(n, 1, 6, range(6)), np.maximum.reduceat
    ways = (CW, CCW, SHORT, SHORT_CCW)
    direction = [CW] * len(ordered)
    for i in ordered:
        add(rows[i], load, cand)  # out= positionally
        m0, m1, m2, m3, m4, m5 = busiest(flat, halves).tolist()
        w = least_way(m0, m1, m2, m3, m4, m5, moved[i], top_cw, top_ccw)
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
def segments(n: int, count: int, width: int, offsets: Sequence[int]) -> np.ndarray:
    """Starts of `reduceat` segments over `count` rows of `width`·N: row a's a·width·N + o·N for
    each o in `offsets` (a shape's constant, kept; read only)."""
    starts = np.add.outer(np.arange(0, width * n * count, width * n), np.multiply(offsets, n)).ravel()
    starts.flags.writeable = False
    return starts


def balance_both(both: np.ndarray, short: tuple[np.ndarray, np.ndarray], ordered: list[int]) -> tuple[
        tuple[list[int], list[int], int], tuple[list[int], tuple[int, int]]]:
    """`balance_one_ring(both, short, ordered)` and `balance(both, ordered)` (the per-shard and
    the balanced plan on one ring) in one pass (`balance_streams`)."""
    n = both.shape[1]
    count = len(both) // 2
    arcs = both.reshape(count, 2 * n)
    opts = np.concatenate((arcs, short[0].reshape(count, 2 * n), short[1].reshape(count, 2 * n), arcs),
                          axis=1)  # [A, 8N]
    # bytes moved: CW's clockwise half, CCW's counter-clockwise half, SHORT's, SHORT_CCW's (both
    # halves); the fifth segment (the balanced plan's arcs) closes the fourth and is dropped
    starts = segments(n, count, 8, (0, 1, 2, 4, 6))
    moved = np.add.reduceat(opts.ravel(), starts).reshape(count, 5)[:, :4].tolist()
    return balance_streams(list(opts.reshape(count, 4, 2 * n)), moved, ordered)


def balance_streams(rows: list[np.ndarray], moved: list[list[int]], ordered: list[int]) -> tuple[
        tuple[list[int], list[int], int], tuple[list[int], tuple[int, int]]]:
    """The per-shard plan's and the balanced plan's choices on one ring (`balance_one_ring`,
    `balance`) in one pass: each stream's candidate loads of both plans in one numpy add and one
    reduceat. `rows[a]`: stream a's [4, 2N] options, rows 0-2 its CW/CCW, SHORT and SHORT_CCW
    options against the per-shard plan's load (kept in three copies), row 3 its clockwise and
    counter-clockwise arcs against the balanced plan's load; `moved[a]`: its options' bytes x
    links (CW's clockwise, CCW's counter-clockwise, SHORT's, SHORT_CCW's)."""
    n = rows[0].shape[1] // 2
    (load, cand, flat, per, per_cw, per_ccw, bal_cw, bal_ccw, cw_out, ccw_out, short_out, short_ccw_out, cand_bal_cw,
     cand_bal_ccw, halves) = _scratch(n)
    load.fill(0)
    add, busiest = np.add, np.maximum.reduceat
    top_cw = top_ccw = 0  # the per-shard plan's busiest link so far, each way
    bal_top_cw = bal_top_ccw = sum_cw = sum_ccw = 0  # the balanced plan's, and its bytes moved each way
    ways = (CW, CCW, SHORT, SHORT_CCW)
    direction, bal_direction = [CW] * len(ordered), [CW] * len(ordered)
    for i in ordered:
        add(rows[i], load, cand)  # out= positionally
        m0, m1, m2, m3, m4, m5, b0, b1 = busiest(flat, halves).tolist()
        h0, h1, h2, h3 = moved[i]
        # the per-shard plan (`least_way`, inlined): the least (busiest link, bytes moved, way)
        key, least = (m0 if m0 > top_ccw else top_ccw), h0
        w = 0
        k = m1 if m1 > top_cw else top_cw
        if k < key or (k == key and h1 < least):
            key, least, w = k, h1, 1
        k = m2 if m2 > m3 else m3
        if k < key or (k == key and h2 < least):
            key, least, w = k, h2, 2
        k = m4 if m4 > m5 else m5
        if k < key or (k == key and h3 < least):
            w = 3
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
            sum_cw += h0
        else:
            bal_ccw[:] = cand_bal_ccw
            bal_top_ccw = b1
            sum_ccw += h1
            bal_direction[i] = CCW
    return (direction, [0] * len(ordered), max(top_cw, top_ccw)), (bal_direction, (bal_top_cw, bal_top_ccw))


#: `balance_streams`' working arrays and their views, per thread and ring size: building them
#: is about a tenth of a small step's balance; nothing of them outlives a call (loads zeroed first)
_SCRATCH = threading.local()


def _scratch(n: int) -> tuple[np.ndarray, ...]:
    """(load [4, 2N], the candidates [4, 2N] and flat, then views: the per-shard plan's loads, their
    halves, the balanced plan's halves; the candidates' CW/CCW halves, SHORT, SHORT_CCW rows,
    balanced halves; the reduceat starts of the 8 half rows) for `balance_streams`."""
    kept = _SCRATCH.__dict__
    arrays = kept.get(n)
    if arrays is None:
        load = np.zeros((4, 2 * n), dtype=np.int64)  # the per-shard plan's x 3, then the balanced plan's
        cand = np.empty((4, 2 * n), dtype=np.int64)
        per = load[:3]
        arrays = kept[n] = (load, cand, cand.ravel(), per, per[:, :n], per[:, n:], load[3, :n], load[3, n:],
                            cand[0, :n], cand[0, n:], cand[1], cand[2], cand[3, :n], cand[3, n:],
                            segments(n, 1, 8, range(8)))
    return arrays


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
