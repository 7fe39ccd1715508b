"""The least busiest-link load any direction choice allows on the virtual rings, from below.

Every shard group (an expert's shards homed on one chiplet) takes one of a few walks: per ring,
clockwise or counter-clockwise from its home (R1-R3). Whatever the choice, some directed link
carries at least z* bytes, where z* is the optimum of the fractional min-max problem (each group
may split its bytes over its walks). For any link weights w >= 0 summing to 1, weak duality gives

    z* >= sum over groups of bytes x (the least w-weight of its walks)

so every w yields a valid bound; multiplicative weights steer w towards the links that the
groups' cheapest walks overload, and the best bound seen is returned. Uniform weights give the
mean load over all links, the old `walked / links` term, so the result is never below it.
"""

from __future__ import annotations

import numpy as np

#: Multiplicative-weights rounds and first step (decaying as 1/sqrt(round)): 0.99-1.00 of the LP
#: optimum on hbm-8's link-bound steps (the tests hold it to an exact LP on random cases).
ROUNDS = 128
RATE = 2.0


class Walks:
    """The walks of every shard group: each an arc of `length` links starting at `start` on one
    ring-direction segment `seg` (ring r clockwise is 2r, counter-clockwise 2r + 1; on each,
    links are numbered by the position they leave in walking order, so every walk is contiguous
    modulo n)."""

    def __init__(self, n: int, segments: int) -> None:
        self.n, self.segments = n, segments
        self.group: list[int] = []
        self.seg: list[int] = []
        self.start: list[int] = []
        self.length: list[int] = []
        self.nbytes: list[int] = []

    def __repr__(self) -> str:
        walks = list(zip(self.group, self.seg, self.start, self.length))
        return f"Walks(n={self.n}, segments={self.segments}, bytes={self.nbytes}, walks={walks})"

    def add_group(self, nbytes: int, walks: list[tuple[int, int, int]]) -> None:
        """One group of `nbytes` with its (segment, start, length) choices."""
        g = len(self.nbytes)
        self.nbytes.append(nbytes)
        for seg, start, length in walks:
            self.group.append(g)
            self.seg.append(seg)
            self.start.append(start)
            self.length.append(length)


def min_max_load(walks: Walks, enough: float = 0.0) -> int:
    """A lower bound on the busiest link's bytes under any (even fractional) choice of walks.

    Stops early when it matches a choice's peak (optimal) or when some choice's peak is at most
    `enough` bytes (the caller's other bounds already dominate: no finer bound can matter)."""
    if not walks.nbytes:
        return 0
    n, segs = walks.n, walks.segments
    group = np.asarray(walks.group, dtype=np.int64)
    seg = np.asarray(walks.seg, dtype=np.int64)
    start = np.asarray(walks.start, dtype=np.int64)
    length = np.asarray(walks.length, dtype=np.int64)
    nbytes = np.asarray(walks.nbytes, dtype=np.float64)
    groups = len(nbytes)
    # walks over prefix sums of each segment's weights laid out twice (an arc wraps at most once)
    lo = seg * (2 * n + 1) + start
    hi = lo + length
    walk_bytes = nbytes[group]
    weights = np.full((segs, n), 1.0 / (segs * n))
    best, upper = 0.0, np.inf
    for t in range(ROUNDS):
        prefix = np.zeros((segs, 2 * n + 1))
        np.cumsum(np.concatenate((weights, weights), axis=1), axis=1, out=prefix[:, 1:])
        cost = prefix.ravel()[hi] - prefix.ravel()[lo]
        least = np.full(groups, np.inf)
        np.minimum.at(least, group, cost)
        best = max(best, float(nbytes @ least) / float(weights.sum()))
        # each group's cheapest walk (the first of equals), and the loads they put on the links
        chosen = np.zeros(len(group), dtype=bool)
        first = np.full(groups, len(group))
        cheapest = np.flatnonzero(cost <= least[group])
        np.minimum.at(first, group[cheapest], cheapest)
        chosen[first] = True
        diff = np.bincount(lo[chosen], walk_bytes[chosen], segs * (2 * n + 1))
        diff -= np.bincount(hi[chosen], walk_bytes[chosen], segs * (2 * n + 1))
        run = np.cumsum(diff.reshape(segs, 2 * n + 1), axis=1)
        load = run[:, :n] + run[:, n:2 * n]
        peak = float(load.max())
        upper = min(upper, peak)
        if upper <= enough or best >= upper * (1 - 1e-6):
            break
        weights = weights * np.exp(RATE / np.sqrt(t + 1) * load / peak)
        weights /= weights.sum()
    # a float sum of products: shave past its rounding (relative 1e-12 at most) so it stays a bound
    return int(best * (1 - 1e-9))
