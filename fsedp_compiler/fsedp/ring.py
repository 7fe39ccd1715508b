"""The R1 virtual ring: positions on the target's Hamiltonian cycle and walks along it.

Direction +1 follows the cycle as listed (clockwise), -1 walks it backwards. `route` gives one
shard's trajectory in O(N); `routes` gives every home's at once in O(N) (one sweep each way), and
`route_lengths` the links walked for many member sets at once (numpy), for the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CW, CCW = 1, -1
#: Streams whose shards each walk the shorter way round from their home, the direction decided
#: per shard home, not per expert (`short_routes`): equally long ways go clockwise (SHORT) or
#: counter-clockwise (SHORT_CCW).
SHORT, SHORT_CCW = 0, 2


@dataclass(frozen=True)
class Ring:
    """A fixed Hamiltonian cycle over the chiplets (R1)."""

    order: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pos", {c: i for i, c in enumerate(self.order)})

    @property
    def size(self) -> int:
        return len(self.order)

    def pos(self, chiplet: int) -> int:
        return self._pos[chiplet]  # type: ignore[attr-defined]

    def step(self, chiplet: int, direction: int) -> int:
        """The neighbour of `chiplet` along the ring in `direction`."""
        return self.order[(self.pos(chiplet) + direction) % self.size]

    def dist(self, a: int, b: int, direction: int) -> int:
        """Hops from a to b walking in `direction` (0 when a == b)."""
        return ((self.pos(b) - self.pos(a)) * direction) % self.size

    def walk(self, start: int, hops: int, direction: int) -> list[int]:
        """The chiplets from `start` (included) over `hops` further hops."""
        p, n = self.pos(start), self.size
        return [self.order[(p + direction * i) % n] for i in range(hops + 1)]

    def members_in_order(self, members: int, start: int, direction: int) -> list[int]:
        """Chiplets of bitmask `members` in visiting order from `start` (included) in `direction`."""
        return [c for c in self.walk(start, self.size - 1, direction) if members >> c & 1]

    def first_member(self, members: int, start: int, direction: int) -> int:
        """The first chiplet of `members` reached from `start` (included) walking in `direction`."""
        p, n = self.pos(start), self.size
        for i in range(n):
            c = self.order[(p + direction * i) % n]
            if members >> c & 1:
                return c
        raise ValueError("empty member set")




def route(ring: Ring, home: int, members: int, direction: int, rule: str = "nearest") -> tuple[int, int]:
    """(entry member, links walked) of a shard loaded at `home` under a trajectory rule; O(N).
    The reference definition: `routes` and `route_lengths` must agree with it (tested)."""
    if rule == "fullring":
        return ring.first_member(members, home, direction), ring.size - 1
    start = ring.order[0] if rule == "single-entry" else home
    entry = ring.first_member(members, start, direction)
    last = ring.members_in_order(members, entry, direction)[-1]
    return entry, ring.dist(home, entry, direction) + ring.dist(entry, last, direction)


# In "walk order" a direction's ring positions are renumbered w = 0..N-1 so that walking in that
# direction is w -> w + 1 (mod N): w = p clockwise, w = N - 1 - p counter-clockwise. Every trajectory
# rule then reduces to two sweeps over the walk: the first member at or after w, and the last
# member strictly before w (cyclically). A shard homed at w entering at the next member x and
# visiting all members ends at the member just before x, which (no member lies in [w, x)) is the
# last member strictly before w: so `nearest` walks (last_before[w] - w) mod N links, never a lap.


def walk_order(ring: Ring, direction: int) -> tuple[int, ...]:
    """The chiplets in walk order of `direction` (walking in `direction` is index + 1)."""
    return ring.order if direction > 0 else ring.order[::-1]


def routes(ring: Ring, members: int, direction: int, rule: str = "nearest") -> tuple[list[int], list[int]]:
    """`route` for every home at once, O(N): (entry member, links walked) lists indexed by chiplet
    (chiplets are 0..N-1). Raises ValueError for an empty member set, as `route` does."""
    n = ring.size
    chips = walk_order(ring, direction)
    flags = [members >> c & 1 for c in chips]
    # first_from[w]: walk index of the first member at or after w, unwrapped (may be >= n)
    first_from = [0] * n
    nxt = -1
    for w in range(n - 1, -1, -1):
        if flags[w]:
            nxt = w
        first_from[w] = nxt
    if nxt < 0:
        raise ValueError("empty member set")
    # last_before[w]: walk index of the last member strictly before w, cyclically (itself if alone)
    last_before = [0] * n
    prev = max(w for w in range(n) if flags[w])  # before w = 0: wrap to the last member
    for w in range(n):
        last_before[w] = prev
        if flags[w]:
            prev = w
    for w in range(n):
        if first_from[w] < 0:
            first_from[w] = nxt + n  # no member at or after w: wrap to the first one
    entry = [0] * n
    length = [0] * n
    if rule == "single-entry":
        x = first_from[0 if direction > 0 else n - 1] % n  # ring position 0 in walk order
        spread = (last_before[x] - x) % n
        for w, c in enumerate(chips):
            entry[c] = chips[x]
            length[c] = (x - w) % n + spread
    elif rule == "fullring":
        for w, c in enumerate(chips):
            entry[c] = chips[first_from[w] % n]
            length[c] = n - 1
    else:
        for w, c in enumerate(chips):
            entry[c] = chips[first_from[w] % n]
            length[c] = (last_before[w] - w) % n
    return entry, length


def route_lengths(walk_members: np.ndarray, direction: int | np.ndarray, rule: str = "nearest") -> np.ndarray:
    """`routes`' links walked for many member sets at once: `walk_members` is [sets, N] bool, each
    row in the walk order of its direction (`walk_order`; `direction`: one for all rows or one per
    row), no row empty; returns [sets, N] int64 indexed by the home's walk index. O(sets x N)."""
    rows, n = walk_members.shape
    if rule == "fullring":
        return np.full((rows, n), n - 1, dtype=np.int64)
    w = np.arange(n, dtype=np.int64)
    # last member at or before w (-1: none); the last member strictly before w is that at w - 1,
    # or, with none before w, the last member overall (cyclic wrap)
    upto = np.maximum.accumulate(np.where(walk_members, w, -1), axis=1)
    last_before = np.empty_like(upto)
    last_before[:, 0] = -1
    last_before[:, 1:] = upto[:, :-1]
    last_before = np.where(last_before < 0, upto[:, -1:], last_before)
    if rule == "single-entry":
        # every shard enters at the first member reached from ring position 0 (walk index 0
        # clockwise, N - 1 counter-clockwise), then walks on to the member just before it
        first = walk_members.argmax(axis=1)
        entry = np.where(np.asarray(direction) > 0, first, np.where(walk_members[:, n - 1], n - 1, first))
        spread = (last_before[np.arange(rows), entry] - entry) % n
        return (entry[:, None] - w) % n + spread[:, None]
    return (last_before - w) % n


def short_routes(ring: Ring, members: int, rule: str = "nearest",
                 tie: int = CW) -> tuple[list[int], list[int], list[int]]:
    """A SHORT stream's trajectories, every home at once, O(N): (direction, entry member, links
    walked) lists indexed by chiplet; each home takes the direction whose trajectory walks fewer
    links (ties: `tie`)."""
    cw_entry, cw_len = routes(ring, members, CW, rule)
    ccw_entry, ccw_len = routes(ring, members, CCW, rule)
    n = ring.size
    way = [CW if cw_len[c] < ccw_len[c] or (cw_len[c] == ccw_len[c] and tie == CW) else CCW for c in range(n)]
    entry = [cw_entry[c] if way[c] == CW else ccw_entry[c] for c in range(n)]
    length = [cw_len[c] if way[c] == CW else ccw_len[c] for c in range(n)]
    return way, entry, length


def directed_routes(ring: Ring, members: int, direction: int,
                    rule: str = "nearest") -> tuple[list[int], list[int], list[int]]:
    """(direction, entry, links walked) per home for a stream of any direction (CW, CCW, SHORT,
    SHORT_CCW)."""
    if direction in (SHORT, SHORT_CCW):
        return short_routes(ring, members, rule, CW if direction == SHORT else CCW)
    entry, length = routes(ring, members, direction, rule)
    return [direction] * ring.size, entry, length
