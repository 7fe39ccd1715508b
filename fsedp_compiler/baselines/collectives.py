"""Ring collectives over a layer step's whole token set, once per step (`tp`, EP's shared experts).

* all-gather: every chiplet's tokens (all of them, each once, whatever its experts) go both ways
  round the virtual ring, covering it in ceil((N-1)/2) hops, in chunks of `CHUNK_TOKENS` that
  pipeline over the hops; every chiplet receives every other chiplet's tokens exactly once.
* reduce-scatter: the partial outputs of chiplet s's tokens, already summed over experts on each
  chiplet (gate x partial of every expert the chiplet computed a slice of), flow along the ring
  towards s from both sides in the same chunks, each chiplet adding what it received (ACC) to its
  own before passing the sum on (REDUCE); s adds the two sums it receives. One message per token
  and hop, not one per (token, expert).

Their transfers carry the expert tag `ALL_EXPERTS` (`e=*` in the ISA): token group g = c is
chiplet c's whole token set, g = N + c the partial outputs of those tokens summed over experts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fsedp_compiler.baselines.taskgraph import REDUCE, TOKSEND
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.isa import ALL_EXPERTS

from fsedp_compiler.baselines.common import Builder, StepRoute

#: Tokens per collective message: the all-gather and reduce-scatter of a large token set are
#: pipelined in chunks of this many tokens (each chunk moves hop by hop on its own).
CHUNK_TOKENS = 16


def chunks(tokens: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
    """(first row, tokens) of each chunk of a token group."""
    return [(i, tokens[i:i + CHUNK_TOKENS]) for i in range(0, len(tokens), CHUNK_TOKENS)]


def ring_at(ring: Ring, chiplet: int, hops: int, direction: int) -> int:
    """The chiplet `hops` ring positions from `chiplet` in `direction` (+1 clockwise)."""
    return ring.order[(ring.pos(chiplet) + direction * hops) % ring.size]


def ring_halves(n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(direction, hops) of the two halves of a bidirectional ring collective over n chiplets."""
    return (1, n // 2), (-1, (n - 1) // 2)


@dataclass
class Gathered:
    """Where the all-gathered tokens land: per chiplet, token -> the transfer that brought it."""

    arrival: list[dict[int, int]]

    def deps(self, chiplet: int, tokens: tuple[int, ...]) -> tuple[int, ...]:
        """The arrivals at `chiplet` that an FFN on `tokens` there waits for (its own need none)."""
        here = self.arrival[chiplet]
        return tuple(sorted({here[t] for t in tokens if t in here}))


def all_gather(b: Builder, route: StepRoute, ring: Ring) -> Gathered:
    """Every chiplet's token set to every other chiplet, once (module docstring)."""
    n = b.target.num_chiplets
    arrival: list[dict[int, int]] = [{} for _ in range(n)]
    for src, toks in route.local.items():
        for row, group in chunks(toks):
            for d, hops in ring_halves(n):
                last = None
                for h in range(hops):
                    a, c = ring_at(ring, src, h, d), ring_at(ring, src, h + 1, d)
                    last = b.move(TOKSEND, b.topo.path(a, c), ALL_EXPERTS, src, len(group) * b.token_bytes, last,
                                  row=row, rows=len(group))
                    assert last is not None
                    for t in group:
                        arrival[c][t] = last
    return Gathered(arrival)


def reduce_scatter(b: Builder, route: StepRoute, ring: Ring,
                   ffns_for: Callable[[int, tuple[int, ...]], tuple[int, ...]]) -> None:
    """Every chiplet's summed partial outputs back to the tokens' chiplets, once (module docstring).
    `ffns_for(chiplet, tokens)`: the FFNs on `chiplet` whose partial outputs cover some of `tokens`
    (a chunk's REDUCE there waits for all of them)."""
    n = b.target.num_chiplets
    for dst, toks in route.local.items():
        for row, group in chunks(toks):
            nbytes = len(group) * b.partial_bytes
            for d, hops in ring_halves(n):
                # the chain starts `hops` chiplets away against direction d and walks towards dst
                partial = None
                for h in range(hops, 0, -1):
                    a, c = ring_at(ring, dst, h, -d), ring_at(ring, dst, h - 1, -d)
                    deps = ffns_for(a, group)
                    if partial is not None:
                        deps += (b.acc(a, ALL_EXPERTS, n + dst, group, (partial,), row),)
                    partial = b.move(REDUCE, b.topo.path(a, c), ALL_EXPERTS, n + dst, nbytes, None, extra=deps,
                                     row=row, rows=len(group))
                if partial is not None:
                    b.acc(dst, ALL_EXPERTS, n + dst, group, (partial,), row)
