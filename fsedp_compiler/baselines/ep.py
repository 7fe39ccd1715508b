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
  resident); a cached expert needs no DRAM read in a later step. A DRAM chiplet also caches its
  slices of the shared experts (used every step, so they stay).

Shared experts (every token's) have no owner in any of them: a shared expert would make its owner
take every token of the step. Like the dense part of the model, they run tensor-parallel over all
chiplets, as DeepSpeed-MoE inference tensor-slices non-expert weights and Megatron-Core shards
shared experts with TP: chiplet c computes slice c (tiles [c·g, (c+1)·g), stored as `tp` stores
them) on every token, after one all-gather of the step's tokens, and the partial outputs of all
shared experts are reduce-scattered once (`collectives`). Replicating them instead (data parallel
on every chiplet) would read the whole shared expert from every DRAM channel each step.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fsedp_compiler.baselines.taskgraph import FREE, REDUCE, SEND, TOKSEND, Task
from fsedp_compiler.fsedp.ring import Ring

from fsedp_compiler.baselines.collectives import Gathered, all_gather, reduce_scatter
from fsedp_compiler.baselines.common import Builder, Options, StepRoute, paired_order


def ep_owner(expert: int, dram: tuple[int, ...]) -> int:
    """Balanced EP placement: expert e lives whole in the DRAM of the (e mod D)-th DRAM chiplet."""
    return dram[expert % len(dram)]


def hydra_owner(route: StepRoute, expert: int, home: int, b: Builder) -> int:
    """The chiplet holding most of the expert's tokens (ties: nearest the expert's DRAM home)."""
    counts = {c: len(t) for c, t in route.tokens[expert].items()}
    return min(counts, key=lambda c: (-counts[c], b.topo.dist(home, c), c))


@dataclass
class EpState:
    """Per-layer state carried across steps: each chiplet's cache (ep-cache), LRU first: expert ->
    the tiles of it kept there (a routed expert whole at its owner, a slice of a shared one)."""

    cache: dict[int, OrderedDict[int, tuple[int, ...]]] = field(default_factory=dict)


@dataclass
class _Shared:
    """The step's shared experts run tensor-parallel (module docstring)."""

    experts: list[int]
    gathered: Gathered
    ffns: dict[int, list[int]] = field(default_factory=dict)
    """chiplet -> the FFNs of its slices of every shared expert"""

    @staticmethod
    def start(b: Builder, route: StepRoute, ring: Ring, experts: list[int]) -> _Shared | None:
        """All-gather the step's tokens when it has shared experts."""
        return _Shared(experts, all_gather(b, route, ring)) if experts else None

    def tiles(self, b: Builder, c: int) -> range:
        """Chiplet c's slice of a shared expert."""
        g = b.plan.num_shards // b.target.num_chiplets
        return range(c * g, (c + 1) * g)

    def finish(self, b: Builder, route: StepRoute, ring: Ring) -> None:
        """Reduce-scatter the slices' partial outputs (every shared expert covers every token)."""
        reduce_scatter(b, route, ring, lambda c, tokens: tuple(self.ffns.get(c, ())))


def _split(b: Builder, order: list[int]) -> tuple[list[int], list[int]]:
    """(routed, shared) experts of `order`, each in that order."""
    first_shared = b.spec.num_experts
    return [e for e in order if e < first_shared], [e for e in order if e >= first_shared]


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


def _cache_capacity(b: Builder, route: StepRoute, owners: int, layers: int, shared: bool) -> int:
    """SRAM a chiplet can give one layer's cache: what B tile buffers and its share of the step's
    token activations (routed tokens in and out at the owners; with shared experts, every token,
    all-gathered) leave free, split evenly between the program's MoE layers (every layer keeps
    its cache resident in the same SRAM)."""
    routed = sum(route.count(e) for e in route.tokens if e < b.spec.num_experts)
    reserve = 2 * -(-routed // owners) * b.token_bytes
    if shared:
        reserve += sum(len(v) for v in route.local.values()) * b.token_bytes
    return max(b.target.chiplet.sram_bytes - b.plan.buffers * b.plan.max_shard_bytes - reserve, 0) // max(layers, 1)


def _entry_bytes(b: Builder, expert: int, tiles: tuple[int, ...]) -> int:
    return len(tiles) * b.plan.shard_bytes(expert)


def plan_ep(b: Builder, route: StepRoute, ring: Ring, state: EpState, *, cache: bool = False,
            layers: int = 1) -> None:
    """Strong EP (and ep-cache): overlapped tile streaming at each owner; shared experts
    tensor-parallel over every chiplet."""
    n, m = b.target.num_chiplets, b.plan.num_shards
    dram = b.target.dram_at
    order = paired_order(route)
    routed, shared_experts = _split(b, order)
    owner_of = {e: ep_owner(e, dram) for e in routed}
    arrivals = {e: _dispatch(b, route, e, owner_of[e]) for e in routed}
    shared = _Shared.start(b, route, ring, shared_experts)
    seq: dict[int, list[int]] = {c: [] for c in range(n)}  # tile-buffered FFNs in sequence, per chiplet
    capacity = _cache_capacity(b, route, len(dram), layers, shared is not None) if cache else 0
    last_use: dict[tuple[int, int], list[int]] = {}
    if cache:
        # what the caches hold when the step starts (kept tiles of earlier steps)
        b.graph.resident = [0] * n
        for c, lru in state.cache.items():
            b.graph.resident[c] = sum(_entry_bytes(b, v, tiles) for v, tiles in lru.items())
        # the capacity follows the step's token count: shrink the caches first if it fell
        for c, lru in state.cache.items():
            while sum(_entry_bytes(b, v, tiles) for v, tiles in lru.items()) > capacity:
                v, tiles = lru.popitem(last=False)
                _evict(b, c, v, tiles, ())
    for e in order:
        toks = route.all_tokens(e)
        if shared is not None and e in shared.experts:
            stores = b.topo.slice_stores
            for c in range(n):
                tiles = tuple(shared.tiles(b, c))
                deps = shared.gathered.deps(c, toks)
                # a kept tile is a DRAM load's: chiplets without DRAM stream their slices
                keep = cache and stores[c] == c
                shared.ffns.setdefault(c, []).extend(
                    _compute(b, state, seq, last_use, c, stores[c], e, tiles, toks, deps, keep, capacity, sets=True))
            if e == shared.experts[-1]:
                shared.finish(b, route, ring)
            continue
        o = owner_of[e]
        ffns = _compute(b, state, seq, last_use, o, o, e, tuple(range(m)), toks, tuple(arrivals[e]), cache, capacity)
        _combine(b, route, e, o, ffns)


def _compute(b: Builder, state: EpState, seq: dict[int, list[int]], last_use: dict[tuple[int, int], list[int]],
             c: int, store: int, e: int, tiles: tuple[int, ...], toks: tuple[int, ...], deps: tuple[int, ...],
             cache: bool, capacity: int, sets: bool = False) -> list[int]:
    """The FFNs of `tiles` of expert e on chiplet c (read at `store`): from c's cache when kept
    there, else loaded into it when the cache can hold them (evicting least recently used), else
    streamed through c's B tile buffers."""
    channels = b.target.chiplet.dram_channels
    lru = state.cache.setdefault(c, OrderedDict())
    size = _entry_bytes(b, e, tiles)
    ffns: list[int] = []
    if cache and e in lru:
        lru.move_to_end(e)
        ffns = [b.ffn(c, e, j, toks, deps, sets) for j in tiles]
    elif cache and size <= capacity:
        evicted: list[tuple[int, tuple[int, ...]]] = []
        while sum(_entry_bytes(b, v, t) for v, t in lru.items()) + size > capacity:
            evicted.append(lru.popitem(last=False))
        lru[e] = tiles
        # the tiles overwrite the evicted entries' slots: free those after their uses in this step
        after = tuple(i for v, t in evicted for i in _evict(b, c, v, t, tuple(last_use.get((c, v), ()))))
        for j in tiles:
            load = b.load(c, j % channels, e, j, after)
            b.graph.tasks[load].keep = True  # resident in the cache until evicted
            ffns.append(b.ffn(c, e, j, toks, (load, *deps), sets))
    else:
        s = seq[c]
        for j in tiles:
            reuse = (s[len(s) - b.plan.buffers],) if len(s) >= b.plan.buffers else ()
            load = b.load(store, j % channels, e, j, reuse)
            tile = b.move(SEND, b.topo.path(store, c), e, j, b.plan.shard_bytes(e), load)
            assert tile is not None
            s.append(b.ffn(c, e, j, toks, (tile, *deps), sets))
            ffns.append(s[-1])
    last_use[(c, e)] = ffns
    return ffns


def _evict(b: Builder, chiplet: int, expert: int, tiles: tuple[int, ...], deps: tuple[int, ...]) -> list[int]:
    """FREE the cached `tiles` of `expert` at `chiplet` once `deps` are done; returns the FREE tasks."""
    size = b.plan.shard_bytes(expert)
    return [b.graph.add(Task(FREE, chiplet, ("control", chiplet, 0), 0, 0, deps, expert, j, release=size))
            for j in tiles]


def plan_serial(b: Builder, route: StepRoute, ring: Ring, opts: Options, *, hydra: bool) -> None:
    """ep-serial and hydra: whole experts, one resident per chiplet, no load/compute overlap;
    shared experts first, a slice on every chiplet (tensor parallel)."""
    dram = b.target.dram_at
    channels = b.target.chiplet.dram_channels
    m = b.plan.num_shards
    experts = paired_order(route) if hydra else sorted(route.tokens)
    if hydra and opts.hydra_skip_single:
        experts = [e for e in experts if route.count(e) > 1]
    routed, shared_experts = _split(b, experts)
    previous: dict[int, list[int]] = {}  # chiplet -> FFNs of the expert resident before
    shared = _Shared.start(b, route, ring, shared_experts)
    if shared is not None:  # first: the reduce-scatter then overlaps the routed experts (measured)
        _serial_slices(b, route, ring, shared, previous)
    for e in routed:
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


def _serial_slices(b: Builder, route: StepRoute, ring: Ring, shared: _Shared, previous: dict[int, list[int]]) -> None:
    """Every chiplet's slices of the shared experts, each resident alone (after the chiplet's
    expert before it), then their reduce-scatter."""
    channels = b.target.chiplet.dram_channels
    for e in shared.experts:
        toks = route.all_tokens(e)
        for c in range(b.target.num_chiplets):
            store = b.topo.slice_stores[c]
            tiles = []
            for j in shared.tiles(b, c):
                load = b.load(store, j % channels, e, j, tuple(previous.get(c, ())))
                tiles.append(b.move(SEND, b.topo.path(store, c), e, j, b.plan.shard_bytes(e), load))
            deps = (*tiles, *shared.gathered.deps(c, toks))
            previous[c] = [b.ffn(c, e, j, toks, deps, True) for j in shared.tiles(b, c)]
            shared.ffns.setdefault(c, []).extend(previous[c])
    shared.finish(b, route, ring)
