"""Expert-parallel lowerings: `ep` (strong), `ep-serial` and `hydra` (the FSE-DP authors'
baselines, research/moeopt.md §3) and `ep-cache` (EP with an LRU expert cache in SRAM).

Every expert has an owner that computes it on all of its tokens: tokens travel to the owner over
shortest paths (TOKSEND, one group per source chiplet) and their outputs travel back (one group
per destination, then ACC into the token's accumulators).

Outputs leave the owner as REDUCE (its partial outputs for that chiplet's tokens) and are
forwarded as TOKSEND.

* ep: owners are the DRAM chiplets, experts dealt round-robin (balanced counts); an owner streams
  its experts' tiles from its own DRAM through B tile buffers, loads overlapping compute; no
  weight crosses a D2D link.
* ep-serial: the same placement, but one whole expert resident at a time and no overlap: the
  next expert's loads wait until the previous expert's FFNs are done; experts in id order.
* hydra: an expert is computed on the chiplet holding most of its tokens; its tiles come from
  its DRAM home (the ep placement) over D2D when that is another chiplet; experts ordered
  heavy/light paired; one whole expert resident per chiplet, no overlap.
* ep-cache: ep, plus an LRU cache of whole experts per owner in the SRAM the tile buffers and
  token activations leave free, shared evenly by the program's MoE layers (all their caches stay
  resident); a cached expert needs no DRAM read in a later step.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fsedp_compiler.taskgraph import FREE, REDUCE, SEND, TOKSEND, Task

from .common import Builder, Options, StepRoute, paired_order


def ep_owner(expert: int, dram: tuple[int, ...]) -> int:
    """Balanced EP placement: expert e lives whole in the DRAM of the (e mod D)-th DRAM chiplet."""
    return dram[expert % len(dram)]


def hydra_owner(route: StepRoute, expert: int, home: int, b: Builder) -> int:
    """The chiplet holding most of the expert's tokens (ties: nearest the expert's DRAM home)."""
    counts = {c: len(t) for c, t in route.tokens[expert].items()}
    return min(counts, key=lambda c: (-counts[c], b.topo.dist(home, c), c))


@dataclass
class EpState:
    """Per-layer state carried across steps: each owner's expert cache (ep-cache), LRU first."""

    cache: dict[int, OrderedDict[int, None]] = field(default_factory=dict)


def _dispatch(b: Builder, route: StepRoute, expert: int, owner: int) -> list[int]:
    """Send every remote token group of `expert` to its owner; returns the arriving hops."""
    arrivals = []
    for src, toks in route.tokens[expert].items():
        if src != owner:
            last = b.move(TOKSEND, b.topo.path(src, owner), expert, src, len(toks) * b.token_bytes, None,
                          rows=len(toks))
            assert last is not None
            arrivals.append(last)
    return arrivals


def _combine(b: Builder, route: StepRoute, expert: int, owner: int, ffns: list[int]) -> None:
    """Return each remote group's outputs to its chiplet and accumulate them there."""
    n = b.target.num_chiplets
    for dst, toks in route.tokens[expert].items():
        if dst != owner:
            last = b.move(TOKSEND, b.topo.path(owner, dst), expert, n + dst, len(toks) * b.token_bytes, None,
                          extra=tuple(ffns), rows=len(toks), first_kind=REDUCE)
            assert last is not None
            b.acc(dst, expert, n + dst, toks, (last,))


def _cache_capacity(b: Builder, route: StepRoute, owners: int, layers: int) -> int:
    """SRAM an owner can give one layer's expert cache: what B tile buffers and its share of the
    step's token activations (inputs and outputs) leave free, split evenly between the program's
    MoE layers (every layer keeps its cache resident in the same SRAM)."""
    tokens = sum(route.count(e) for e in route.tokens)
    reserve = 2 * -(-tokens // owners) * b.token_bytes
    return max(b.target.chiplet.sram_bytes - b.plan.buffers * b.plan.max_shard_bytes - reserve, 0) // max(layers, 1)


def plan_ep(b: Builder, route: StepRoute, state: EpState, *, cache: bool = False, layers: int = 1) -> None:
    """Strong EP (and ep-cache): overlapped tile streaming at each owner."""
    dram = b.target.dram_at
    channels = b.target.chiplet.dram_channels
    m, buffers = b.plan.num_shards, b.plan.buffers
    order = paired_order(route)
    owner_of = {e: ep_owner(e, dram) for e in order}
    arrivals = {e: _dispatch(b, route, e, owner_of[e]) for e in order}
    ffns_at: dict[int, list[int]] = {o: [] for o in dram}  # tile-buffered FFNs in sequence, per owner
    capacity = _cache_capacity(b, route, len(dram), layers) if cache else 0
    expert_bytes = m * b.plan.max_shard_bytes
    last_use: dict[tuple[int, int], list[int]] = {}
    if cache:
        # what the caches hold when the step starts (kept tiles of earlier steps)
        b.graph.resident = [0] * b.target.num_chiplets
        for o, lru in state.cache.items():
            b.graph.resident[o] = sum(m * b.plan.shard_bytes(v) for v in lru)
        # the capacity follows the step's token count: shrink the cache first if it fell
        for o, lru in state.cache.items():
            while len(lru) * expert_bytes > capacity:
                _evict(b, o, lru.popitem(last=False)[0], ())
    for e in order:
        o = owner_of[e]
        toks = route.all_tokens(e)
        lru = state.cache.setdefault(o, OrderedDict())
        ffns = []
        if cache and e in lru:
            lru.move_to_end(e)
            ffns = [b.ffn(o, e, j, toks, tuple(arrivals[e])) for j in range(m)]
        elif cache and expert_bytes <= capacity:
            evicted: list[int] = []
            while (len(lru) + 1) * expert_bytes > capacity:
                evicted.append(lru.popitem(last=False)[0])
            lru[e] = None
            # the tiles overwrite the evicted experts' slots: free those after their uses in this step
            after = tuple(i for v in evicted for i in _evict(b, o, v, tuple(last_use.get((o, v), ()))))
            for j in range(m):
                load = b.load(o, j % channels, e, j, after)
                b.graph.tasks[load].keep = True  # resident in the cache until evicted
                ffns.append(b.ffn(o, e, j, toks, (load, *arrivals[e])))
        else:
            seq = ffns_at[o]
            for j in range(m):
                reuse = (seq[len(seq) - buffers],) if len(seq) >= buffers else ()
                load = b.load(o, j % channels, e, j, reuse)
                seq.append(b.ffn(o, e, j, toks, (load, *arrivals[e])))
                ffns.append(seq[-1])
        last_use[(o, e)] = ffns
        _combine(b, route, e, o, ffns)


def _evict(b: Builder, owner: int, expert: int, deps: tuple[int, ...]) -> list[int]:
    """FREE every cached tile of `expert` at `owner` once `deps` are done; returns the FREE tasks."""
    size = b.plan.shard_bytes(expert)
    return [b.graph.add(Task(FREE, owner, ("control", owner, 0), 0, 0, deps, expert, j, release=size))
            for j in range(b.plan.num_shards)]


def plan_serial(b: Builder, route: StepRoute, opts: Options, *, hydra: bool) -> None:
    """ep-serial and hydra: whole experts, one resident per chiplet, no load/compute overlap."""
    dram = b.target.dram_at
    channels = b.target.chiplet.dram_channels
    m = b.plan.num_shards
    experts = paired_order(route) if hydra else sorted(route.tokens)
    if hydra and opts.hydra_skip_single:
        experts = [e for e in experts if route.count(e) > 1]
    previous: dict[int, list[int]] = {}  # chiplet -> FFNs of the expert resident before
    for e in experts:
        home = ep_owner(e, dram)
        o = hydra_owner(route, e, home, b) if hydra else home
        arrivals = _dispatch(b, route, e, o)
        wait = tuple(previous.get(o, ()))
        tiles = []
        for j in range(m):
            load = b.load(home, j % channels, e, j, wait)
            tiles.append(b.move(SEND, b.topo.path(home, o), e, j, b.plan.shard_bytes(e), load))
        toks = route.all_tokens(e)
        ffns = [b.ffn(o, e, j, toks, (*tiles, *arrivals)) for j in range(m)]
        previous[o] = ffns
        _combine(b, route, e, o, ffns)
