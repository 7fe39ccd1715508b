"""Local search on the per-shard plan where its links bind (`refine`): the greedy balances
(`schedgreedy.py`) see only the streams before each one; this sees them all."""

from __future__ import annotations

import numpy as np

from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW


def network_set(directions: list[int], rings: list[int]) -> set[tuple[int, int]]:
    """The (ring, direction) virtual networks a plan uses, SHORT ways both of their ring's."""
    used: set[tuple[int, int]] = set()
    for d, r in zip(directions, rings):
        used.update(((r, CW), (r, CCW)) if d in (SHORT, SHORT_CCW) else ((r, d),))
    return used


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
