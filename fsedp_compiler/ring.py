"""The R1 virtual ring: positions on the target's Hamiltonian cycle and walks along it.

Direction +1 follows the cycle as listed (clockwise), -1 walks it backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

CW, CCW = 1, -1


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


#: How a shard's trajectory is chosen. `nearest` is FSE-DP (R2: enter S_e at the first member
#: reached from the DRAM home, visit each member once, stop at the last); the others are the
#: ablations of `fsedpc compile --strategy`: `fullring` (every shard walks the whole ring, as in
#: the FSE-DP authors' simulator) and `single-entry` (all of an expert's shards enter S_e at one
#: member, the first after ring position 0: no complementary streams).
TRAJECTORIES = ("nearest", "fullring", "single-entry")


def route(ring: Ring, home: int, members: int, direction: int, rule: str = "nearest") -> tuple[int, int]:
    """(entry member, links walked) of a shard loaded at `home` under a trajectory rule."""
    if rule == "fullring":
        return ring.first_member(members, home, direction), ring.size - 1
    start = ring.order[0] if rule == "single-entry" else home
    entry = ring.first_member(members, start, direction)
    last = ring.members_in_order(members, entry, direction)[-1]
    return entry, ring.dist(home, entry, direction) + ring.dist(entry, last, direction)
