"""R4, flow control: one pool of B shard buffers per chiplet, shared by every virtual network.

A *virtual network* is one direction of one virtual ring (R1's, or another edge-disjoint
Hamiltonian cycle of the target, `rings.py`): every shard travels in exactly one (`network_of`). Its chiplets' buffers form a cyclic network of bounded queues, so admission
must keep a way forward open. The rule (the compiler's estimator and the machine implement
it independently; tests hold them equal):

* network v *holds* one free slot at chiplet c when its critical bubble is at c, or, when the
  step uses more than one network, when v has no shard at c (its escape slot); the two are one
  slot. Invariant: free(c) >= sum over v of hold_v(c).
* **forward** a v-shard into c (a link transfer): free(c) - sum over w != v of hold_w(c) >= 1.
  It may take v's escape slot or v's critical bubble; when it takes the bubble (nothing else
  was free for it) the bubble moves to the buffer the shard leaves upstream and lands on that
  chiplet when that buffer is freed.
* **inject** a v-shard at c (a DRAM load): free(c) - sum over w of hold_w(c) >= 2: never an
  escape slot nor a bubble, and one slot more stays free for shards passing through (transit
  first: a chiplet that fills itself with its own loads starves the shards it must forward;
  measured, this rule is 1.2-1.8x faster at 16-256 tokens with B = 6 to 12). A pool too small
  for that (B < networks + 2) needs only one (`inject_need`).

Why it cannot deadlock: suppose no engine can start and shards remain. Every held buffer
then belongs to a shard waiting to go on (computes, loads and transfers in flight finish), and
no bubble is on its way. Take a network v with a waiting shard at x: its move to x + 1 is
refused only if hold_v(x + 1) = 0 (the invariant leaves a slot otherwise), i.e. v has a shard at
x + 1 and its bubble is elsewhere; that shard waits for x + 2, and so on round the ring: v has a
shard at every chiplet and its bubble at none, a contradiction. With no shard anywhere every
chiplet has B - (networks) >= `inject_need` free slots, so a load can start. Hence B >=
networks + 1.

Every network's bubble starts on one chiplet (`bubble_home`). Compared with two pools split
between the directions (round 1), a direction that is busy uses the whole pool (the critical
bubble scheme of Chen and Pinkston, with escape slots per network as in Duato's protocol).
"""

from __future__ import annotations

from collections.abc import Hashable

#: R4: the smallest pool that lets one network inject next to its critical bubble.
MIN_BUFFERS = 2

def bubble_home(num_chiplets: int, dram_at: tuple[int, ...] | list[int]) -> int:
    """The chiplet every network's critical bubble starts on: the highest-numbered one without
    DRAM (no load ever waits for the bubble there), else chiplet 0."""
    dram = set(dram_at)
    return next((c for c in range(num_chiplets - 1, -1, -1) if c not in dram), 0)


def network_of(direction: int, ring: int = 0) -> int:
    """The virtual network of a ring and direction: 2 x ring, plus 1 counter-clockwise."""
    return 2 * ring + (0 if direction > 0 else 1)


def inject_need(buffers: int, networks: int) -> int:
    """Free slots beyond those the networks hold that a DRAM load needs: two when the pool has
    room for them, else one."""
    return 2 if buffers >= networks + 2 else 1


def min_buffers(networks: int) -> int:
    """The fewest buffers per chiplet with which `networks` networks cannot deadlock."""
    return max(MIN_BUFFERS, networks + 1)


class Pools:
    """The buffer pools of one step's chiplets under R4 (module docstring), with each chiplet's
    peak of buffers and bytes held."""

    def __init__(self, num_chiplets: int, buffers: int, networks: set[int], home: int = 0,
                 plain: bool = False) -> None:
        """`plain`: no escape slots nor bubbles, a load needs two free buffers and a forward one
        (round 1's bubble rule on one pool for both directions: it can deadlock; for what-ifs)."""
        self.buffers = buffers
        self.free = [buffers] * num_chiplets
        self.count = [[0] * (2 * (max(networks, default=0) // 2 + 1)) for _ in range(num_chiplets)]
        """shards of each network held per chiplet"""
        self.escape = len(networks) > 1 and not plain
        self.bubble = {} if plain else {v: home for v in networks}
        """chiplet of each network's critical bubble; -1 while it moves"""
        self.moving: dict[int, Hashable] = {}
        """network -> the buffer whose release lands its bubble"""
        self.holds = [self._holds(c) for c in range(num_chiplets)]
        """sum of hold_v(c) over the networks, per chiplet"""
        self.inject_need = inject_need(buffers, len(networks)) if not plain else 2
        self.held_bytes = [0] * num_chiplets
        self.peak = [0] * num_chiplets
        self.peak_bytes = [0] * num_chiplets

    def hold(self, c: int, v: int) -> int:
        return 1 if self.bubble.get(v) == c or (self.escape and self.count[c][v] == 0) else 0

    def _holds(self, c: int) -> int:
        return sum(self.hold(c, v) for v in self.bubble)

    def can_forward(self, c: int, v: int) -> bool:
        return self.free[c] - self.holds[c] + self.hold(c, v) >= 1

    def can_inject(self, c: int, v: int) -> bool:
        return self.free[c] - self.holds[c] >= self.inject_need

    def take(self, c: int, v: int, nbytes: int, upstream: Hashable | None = None) -> None:
        """A v-shard takes a buffer at c: a forward from the buffer `upstream`, else a load."""
        before = self.hold(c, v)
        took_bubble = (upstream is not None and self.bubble.get(v) == c
                       and self.free[c] - self.holds[c] + before == 1)
        self.free[c] -= 1
        self.count[c][v] += 1
        if took_bubble:
            self.bubble[v] = -1
            self.moving[v] = upstream
        self.holds[c] += self.hold(c, v) - before
        used = self.buffers - self.free[c]
        if used > self.peak[c]:
            self.peak[c] = used
        self.held_bytes[c] += nbytes
        if self.held_bytes[c] > self.peak_bytes[c]:
            self.peak_bytes[c] = self.held_bytes[c]

    def release(self, c: int, v: int, nbytes: int, key: Hashable) -> None:
        """The v-shard in buffer `key` at c is done there; a bubble waiting on it lands at c."""
        before = self.hold(c, v)
        self.free[c] += 1
        self.count[c][v] -= 1
        self.held_bytes[c] -= nbytes
        if v in self.moving and self.moving[v] == key:
            del self.moving[v]
            self.bubble[v] = c
        self.holds[c] += self.hold(c, v) - before
