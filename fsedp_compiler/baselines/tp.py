"""Tensor-parallel lowering (`tp`): every chiplet computes a 1/N slice of every active expert.

Slice c of an expert is its tiles [c·g, (c+1)·g) (g = tiles per chiplet of the shard plan), in
chiplet c's DRAM, or in a nearest DRAM chiplet's (the stores balanced over equally near ones:
`Topology.slice_stores`) and sent over when c has none. Per active
expert:

* the tokens routed to it are all-gathered over the virtual ring: each source group goes both
  ways round, covering the ring in ceil((N-1)/2) hops, in chunks of `CHUNK_TOKENS` that pipeline
  over the hops; chiplets buffer two experts' tokens at a time;
* every chiplet streams its slice through B tile buffers against all of them;
* the partial outputs are reduce-scattered in the same chunks: the partials of chiplet s's
  tokens flow along the ring towards s from both sides, each chiplet adding its own (ACC) before
  passing them on (REDUCE), and s adds the two sums it receives.
"""

from __future__ import annotations

from fsedp_compiler.ring import Ring
from fsedp_compiler.taskgraph import REDUCE, SEND, TOKSEND

from .common import Builder, StepRoute, paired_order


#: Tokens per collective message: the all-gather and reduce-scatter of a large group are
#: pipelined in chunks of this many tokens (each chunk moves hop by hop on its own).
CHUNK_TOKENS = 16


def _chunks(tokens: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
    """(first row, tokens) of each chunk of a token group."""
    return [(i, tokens[i:i + CHUNK_TOKENS]) for i in range(0, len(tokens), CHUNK_TOKENS)]


def _at(ring: Ring, chiplet: int, hops: int, direction: int) -> int:
    """The chiplet `hops` ring positions from `chiplet` in `direction`."""
    return ring.order[(ring.pos(chiplet) + direction * hops) % ring.size]


def plan_tp(b: Builder, route: StepRoute, ring: Ring) -> None:
    n = b.target.num_chiplets
    g = b.plan.num_shards // n
    channels = b.target.chiplet.dram_channels
    buffers = b.plan.buffers
    seq: dict[int, list[int]] = {c: [] for c in range(n)}  # tile-buffered FFNs in order, per chiplet
    done: dict[int, list[list[int]]] = {c: [] for c in range(n)}  # per chiplet, FFNs of each expert
    for e in paired_order(route):
        groups = route.tokens[e]
        toks = route.all_tokens(e)
        # all-gather: arrived[c] = hops that bring a remote group to chiplet c
        arrived: dict[int, list[int]] = {c: [] for c in range(n)}
        for src, row, group in ((src, row, chunk) for src, whole in groups.items() for row, chunk in _chunks(whole)):
            nbytes = len(group) * b.token_bytes
            for d, hops in ((1, n // 2), (-1, (n - 1) // 2)):
                last = None
                for h in range(hops):
                    a, c = _at(ring, src, h, d), _at(ring, src, h + 1, d)
                    # token buffers for two experts per chiplet: wait until c is done with the
                    # expert two back before sending it this one's tokens
                    window = tuple(done[c][-2]) if len(done[c]) >= 2 else ()
                    last = b.move(TOKSEND, b.topo.path(a, c), e, src, nbytes, last, first_extra=window, row=row,
                                  rows=len(group))
                    assert last is not None
                    arrived[c].append(last)
        ffns: dict[int, list[int]] = {}
        for c in range(n):
            store = b.topo.slice_stores[c]
            mine = []
            for j in range(c * g, (c + 1) * g):
                s = seq[c]
                reuse = (s[len(s) - buffers],) if len(s) >= buffers else ()
                load = b.load(store, j % channels, e, j, reuse)
                tile = b.move(SEND, b.topo.path(store, c), e, j, b.plan.shard_bytes(e), load)
                assert tile is not None
                s.append(b.ffn(c, e, j, toks, (tile, *arrived[c])))
                mine.append(s[-1])
            ffns[c] = mine
            done[c].append(mine)
        # reduce-scatter: two chains end at each destination s
        for dst, row, group in ((dst, row, chunk) for dst, whole in groups.items() for row, chunk in _chunks(whole)):
            nbytes = len(group) * b.partial_bytes
            for d, hops in ((1, n // 2), (-1, (n - 1) // 2)):
                # the chain starts `hops` chiplets away against direction d and walks towards dst
                partial = None
                for h in range(hops, 0, -1):
                    a = _at(ring, dst, h, -d)
                    c = _at(ring, dst, h - 1, -d)
                    deps = tuple(ffns[a])
                    if partial is not None:
                        deps += (b.acc(a, e, n + dst, group, (partial, *ffns[a]), row),)
                    partial = b.move(REDUCE, b.topo.path(a, c), e, n + dst, nbytes, None, extra=deps, row=row,
                                     rows=len(group))
                if partial is not None:
                    b.acc(dst, e, n + dst, group, (partial, *ffns[dst]), row)
