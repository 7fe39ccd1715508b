"""Tensor-parallel lowering (`tp`): every chiplet computes a 1/N slice of every active expert.

Slice c of an expert is its tiles [c·g, (c+1)·g) (g = tiles per chiplet of the shard plan), in
chiplet c's DRAM, or in a nearest DRAM chiplet's (the stores balanced over equally near ones:
`Topology.slice_stores`) and sent over when c has none. Per layer step:

* the step's tokens are all-gathered over the virtual ring once (`collectives.all_gather`): every
  chiplet's tokens reach every chiplet once, whatever experts they are routed to;
* every chiplet streams its slice of every active expert (heavy/light paired order) through B
  tile buffers against the tokens routed to it, each FFN waiting only for the chunks that hold
  its tokens;
* the partial outputs, summed over experts on each chiplet, are reduce-scattered once
  (`collectives.reduce_scatter`): each token's combined output is reduced once, not per expert.

`plan_tp_per_expert` (`tp-per-expert`) is the earlier plan that runs both collectives per active
expert: k' times the activation bytes, but its last reduce-scatter is one expert's, so DRAM-bound
prefill steps end up to 0.5% sooner (README, the baselines).
"""

from __future__ import annotations

from fsedp_compiler.baselines.taskgraph import REDUCE, SEND, TOKSEND
from fsedp_compiler.fsedp.ring import Ring

from fsedp_compiler.baselines.collectives import all_gather, chunks, reduce_scatter, ring_at, ring_halves
from fsedp_compiler.baselines.common import Builder, StepRoute, paired_order


def _slice_ffn(b: Builder, seq: list[int], c: int, e: int, toks: tuple[int, ...], deps: tuple[int, ...],
               sets: bool) -> list[int]:
    """Chiplet c's slice of expert e through its B tile buffers (`seq`: its buffered FFNs so far);
    `sets`: its remote tokens are all-gathered whole token sets."""
    g = b.plan.num_shards // b.target.num_chiplets
    store = b.topo.slice_stores[c]
    channels = b.target.chiplet.dram_channels
    out = []
    for j in range(c * g, (c + 1) * g):
        reuse = (seq[len(seq) - b.plan.buffers],) if len(seq) >= b.plan.buffers else ()
        load = b.load(store, j % channels, e, j, reuse)
        tile = b.move(SEND, b.topo.path(store, c), e, j, b.plan.shard_bytes(e), load)
        assert tile is not None
        seq.append(b.ffn(c, e, j, toks, (tile, *deps), sets))
        out.append(seq[-1])
    return out


def plan_tp(b: Builder, route: StepRoute, ring: Ring) -> None:
    """One all-gather, every chiplet's slices, one reduce-scatter (module docstring)."""
    n = b.target.num_chiplets
    gathered = all_gather(b, route, ring)
    seq: list[list[int]] = [[] for _ in range(n)]
    ffns: list[dict[int, list[int]]] = [{} for _ in range(n)]  # chiplet -> expert -> its slice's FFNs
    for e in paired_order(route):
        toks = route.all_tokens(e)
        for c in range(n):
            ffns[c][e] = _slice_ffn(b, seq[c], c, e, toks, gathered.deps(c, toks), True)
    experts_of = route.experts_of()

    def ffns_for(c: int, tokens: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(i for e in sorted({e for t in tokens for e in experts_of[t]}) for i in ffns[c][e])

    reduce_scatter(b, route, ring, ffns_for)


def plan_tp_per_expert(b: Builder, route: StepRoute, ring: Ring) -> None:
    """Both collectives per active expert: its tokens all-gathered (two experts' tokens buffered at a
    time), every slice computed, its partial outputs reduce-scattered."""
    n = b.target.num_chiplets
    seq: list[list[int]] = [[] for _ in range(n)]
    done: dict[int, list[list[int]]] = {c: [] for c in range(n)}  # per chiplet, FFNs of each expert
    for e in paired_order(route):
        groups = route.tokens[e]
        toks = route.all_tokens(e)
        arrived: dict[int, list[int]] = {c: [] for c in range(n)}
        for src, row, group in ((src, row, chunk) for src, whole in groups.items() for row, chunk in chunks(whole)):
            for d, hops in ring_halves(n):
                last = None
                for h in range(hops):
                    a, c = ring_at(ring, src, h, d), ring_at(ring, src, h + 1, d)
                    window = tuple(done[c][-2]) if len(done[c]) >= 2 else ()
                    last = b.move(TOKSEND, b.topo.path(a, c), e, src, len(group) * b.token_bytes, last,
                                  first_extra=window, row=row, rows=len(group))
                    assert last is not None
                    arrived[c].append(last)
        ffns = {c: _slice_ffn(b, seq[c], c, e, toks, tuple(arrived[c]), False) for c in range(n)}
        for c in range(n):
            done[c].append(ffns[c])
        for dst, row, group in ((dst, row, chunk) for dst, whole in groups.items() for row, chunk in chunks(whole)):
            for d, hops in ring_halves(n):
                partial = None
                for h in range(hops, 0, -1):
                    a, c = ring_at(ring, dst, h, -d), ring_at(ring, dst, h - 1, -d)
                    deps = tuple(ffns[a])
                    if partial is not None:
                        deps += (b.acc(a, e, n + dst, group, (partial, *ffns[a]), row),)
                    partial = b.move(REDUCE, b.topo.path(a, c), e, n + dst, len(group) * b.partial_bytes, None,
                                     extra=deps, row=row, rows=len(group))
                if partial is not None:
                    b.acc(dst, e, n + dst, group, (partial, *ffns[dst]), row)
