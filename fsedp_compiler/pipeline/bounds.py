"""Lower bounds on the estimator's layer time (`estimate.py`) and peak SRAM, made without running
the plan, for `--strategy auto` (`auto.py`).

Auto estimates every candidate strategy on every MoE layer; on a big model almost all of that
time goes into executing the candidates' plans (FSE-DP's shard trips on `streaming.execute`, a
baseline's task graphs, which it must also build, on `taskgraph.execute`). A candidate whose lower
bound is above the runner-up's estimate can be neither the choice nor the runner-up, and one that
cannot fit SRAM cannot be either, so auto need not execute them (`auto._pruned_estimates`).

Time. Both executors are work-conserving list schedulers in which every op occupies one resource
(a DRAM channel, a directed link, a compute engine) for its busy time, one op at a time, and every
op runs. So a step's makespan is at least any one resource's total busy time, plus what must come
before its first op or after its last. A bound that counts only some of a resource's ops is still
a bound, so each strategy's bound counts the ops cheap to know from the routing, the placement and
the cost model: the weight-tile loads and the FFNs (FSE-DP: also its shard sends). FSE-DP's DRAM
channels load in table order, so the last load of each is known and the bound adds its *tail*
(the shard's least walk to its members and its FFNs there): a few microseconds that decide
against FSE-DP's ablations where every DRAM-bound plan reads the same bytes. The channels' part
alone needs only the trips of those last loads (`fsedp_channel_bound`, taken first); every trip
only for a candidate it leaves in (`fsedp_step_bound`). ep-serial and hydra also run whole experts
one after another on a chiplet without overlap: their chain of phases is a bound of its own
(`_serial_chain`). A layer's bound is the sum of its steps' bounds.

SRAM. fsdp, ep-serial and hydra compute an expert only once all its tiles are on the chiplet, so
their peak is at least a whole expert (`baseline_peak_bound`): when that exceeds the SRAM (e.g.
DeepSeek-V3's 84 MiB experts on 32 MiB chiplets) they cannot fit.

`tests/test_auto_bounds.py` holds every bound at or below the estimate on random small cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from fsedp_compiler.baselines.common import Builder, StepRoute, Topology
from fsedp_compiler.baselines.ep import ep_owner, hydra_owner
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.streaming import Trip, head_ns, trajectories
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.traces import RoutingTrace


def fsedp_step_bound(sched: StepSchedule, trips: Sequence[Trip], cost: CostModel, controller: bool = False) -> int:
    """A bound on `streaming.execute`'s makespan of one step's `trips` (as `estimate.fsedp_layer`
    runs them, plus the controller's latency in dynamic mode), the largest of:

    * per DRAM channel, its loads' busy time, then the DRAM latency and the *tail* of its last load
      (a channel loads strictly in table order, so its last load is known): that shard's walk to
      its last member and its FFN there, with every hop at its least (`streaming.walk_ns`);
    * per directed link, the least time before any shard can reach it (*head*), its sends, then the
      link latency;
    * per compute engine, the head (the least time any shard takes to be all there), its FFNs."""
    tokens = {st.expert: st.tokens for st in sched.streams}
    dma: dict[tuple[int, int], int] = defaultdict(int)
    last: dict[tuple[int, int], Trip] = {}
    link: dict[tuple[int, int], int] = defaultdict(int)
    link_head: dict[tuple[int, int], int] = {}
    compute: dict[int, int] = defaultdict(int)
    compute_head: dict[int, int] = {}
    per_size: dict[int, tuple[int, int, int, int]] = {}  # nbytes -> (dram busy, link busy, head_ns, link_ns)
    ffn: dict[tuple[int, int], int] = {}
    lat = cost.dram_latency_ns
    tail: dict[int, int] = {}  # trip seq -> its tail after its load arrives (the channels' last loads)
    for t in trips:
        nbytes = t.nbytes
        sizes = per_size.get(nbytes)
        if sizes is None:
            sizes = per_size[nbytes] = (cost.dram_busy_ns(nbytes), cost.link_busy_ns(nbytes), head_ns(cost, nbytes),
                                        cost.link_ns(nbytes))
        d, hop_ns, head, whole = sizes
        path = t.path
        key = (path[0], t.channel)
        dma[key] += d
        last[key] = t  # trips are in table order: the last one is the channel's last load
        ready = d + lat  # the least time from the step's start until the shard is at path[0]
        for h, (a, b) in enumerate(zip(path, path[1:])):
            link[(a, b)] += hop_ns
            at = ready + h * head  # the least time it can leave a (R7: cut-through)
            if at < link_head.get((a, b), at + 1):
                link_head[(a, b)] = at
        local = tokens[t.expert]
        end = (len(path) - 2) * head + whole if len(path) > 1 else 0  # all of it at the last chiplet
        for h, (c, computes) in enumerate(zip(path, t.computes)):
            if computes:
                k = (t.params, local[c])
                f = ffn.get(k)
                if f is None:
                    f = ffn[k] = cost.ffn_ns(*k)
                compute[c] += f
                arrive = (h - 1) * head + whole if h else 0  # `walk_ns`: all of it at path[h]
                if ready + arrive < compute_head.get(c, ready + arrive + 1):
                    compute_head[c] = ready + arrive
                end = max(end, arrive + f)
        tail[t.seq] = end
    bound = max(max((busy + lat + tail[last[key].seq] for key, busy in dma.items()), default=0),
                max((busy + link_head[key] + cost.link_latency_ns for key, busy in link.items()), default=0),
                max((busy + compute_head[c] for c, busy in compute.items()), default=0))
    return bound + (cost.scheduler_ns(len(sched.streams)) if controller else 0)


def fsedp_channel_bound(sched: StepSchedule, plan: ShardPlan, rings: Sequence[Ring], trajectory: str,
                        cost: CostModel, controller: bool = False) -> int:
    """The DRAM part of `fsedp_step_bound` alone, without the step's trips: each channel's loads
    (one per shard of every stream, at its home), the DRAM latency and the tail of its last load,
    whose trip alone is made (streams' trips do not depend on one another). Cheap: auto takes it
    first and makes every trip only for a candidate this does not leave out."""
    m, streams = plan.num_shards, sched.streams
    dma: dict[int, int] = defaultdict(int)  # channel index -> busy
    for st in streams:
        busy = cost.dram_busy_ns(plan.shard_bytes(st.expert))
        for index, k in plan.channel_counts(st.expert).items():
            dma[index] += k * busy
    last: dict[int, tuple[int, int]] = {}  # channel index -> (stream position, shard) of its last load
    for i in range(len(streams) - 1, -1, -1):
        e = streams[i].expert
        for j in range(m - 1, -1, -1):
            last.setdefault(plan.channel_index(e, j), (i, j))
        if len(last) == len(dma):
            break
    tails: dict[tuple[int, int], int] = {}
    for i in sorted({i for i, _ in last.values()}):
        one = StepSchedule(sched.layer, sched.step, (streams[i],), 0)
        for t in trajectories(one, plan, rings, trajectory):
            tails[(i, t.shard)] = _tail(t, streams[i].tokens, cost)
    lat = cost.dram_latency_ns
    bound = max((busy + lat + tails[last[index]] for index, busy in dma.items()), default=0)
    return bound + (cost.scheduler_ns(len(streams)) if controller else 0)


def _tail(t: Trip, local: tuple[int, ...], cost: CostModel) -> int:
    """The least time from a shard's arrival at its home (its load done) until its trip is done:
    all of it at its last chiplet, and its FFN at each member after all of it is there (R7)."""
    head, whole = head_ns(cost, t.nbytes), cost.link_ns(t.nbytes)
    end = (len(t.path) - 2) * head + whole if len(t.path) > 1 else 0
    for h, (c, computes) in enumerate(zip(t.path, t.computes)):
        if computes:
            end = max(end, ((h - 1) * head + whole if h else 0) + cost.ffn_ns(t.params, local[c]))
    return end


def baseline_layer_bound(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, trace: RoutingTrace,
                         layer_pos: int) -> int:
    """A bound on `estimate.baseline_layer`'s time of `strategy` on the layer (without its
    hydra-skip-single option, which auto never uses): the sum of its steps' bounds."""
    topo = Topology(target)
    cost = CostModel(target, spec.dtype)
    seen: set[int] = set()  # ep-cache: experts active in an earlier step (only they can be cached)
    total = 0
    for s in range(trace.num_steps):
        route = StepRoute.build(trace.step(layer_pos, s)[0], trace.token_chiplet, plan)
        total += baseline_step_bound(strategy, route, plan, target, topo, cost, frozenset(seen))
        seen.update(route.tokens)
    return total


def baseline_peak_bound(strategy: str, plan: ShardPlan, target: Target, trace: RoutingTrace, layer_pos: int) -> int:
    """A bound on the most SRAM a chiplet holds in `strategy`'s plan of the layer (0: none known).

    fsdp, ep-serial and hydra compute an expert on a chiplet only once all of its tiles there are
    (fsdp: a whole expert at every needing chiplet; ep-serial, hydra: a whole routed expert at its
    owner, a slice of every shared one on every chiplet): every FFN of it depends on every one of
    those tiles' loads or arriving sends, each of which holds its tile on that chiplet until all
    that depend on it are done, so when the first FFN starts all the tiles are held at once."""
    if strategy not in ("fsdp", "ep-serial", "hydra"):
        return 0
    m, g = plan.num_shards, plan.num_shards // target.num_chiplets
    active: set[int] = set()
    for s in range(trace.num_steps):
        experts, _ = trace.step(layer_pos, s)
        active.update(int(e) for e in np.unique(experts))
    held = [m * plan.shard_bytes(e) for e in active]
    if plan.layer.num_shared:  # every step has tokens, so every shared expert runs
        shared = plan.shard_bytes(plan.layer.num_experts) * (m if strategy == "fsdp" else g)
        held.append(shared)
    return max(held, default=0)


def ep_cache_never_caches(spec: MoeLayerSpec, plan: ShardPlan, target: Target, trace: RoutingTrace, layer_pos: int,
                          moe_layers: int) -> bool:
    """Whether ep-cache's caches can hold no expert in any step of the layer (`ep._cache_capacity`
    is below a whole routed expert and below a chiplet's slice of a shared one, e.g. experts
    bigger than the SRAM): then its lowering adds exactly ep's tasks (nothing kept, nothing freed,
    nothing resident), so its estimate is ep's and auto need not make its graphs again."""
    from fsedp_compiler.baselines.ep import _cache_capacity
    from fsedp_compiler.baselines.taskgraph import TaskGraph

    n, m = target.num_chiplets, plan.num_shards
    smallest = m * plan.shard_bytes(0)
    if plan.layer.num_shared:
        smallest = min(smallest, (m // n) * plan.shard_bytes(plan.layer.num_experts))
    b = Builder(TaskGraph(spec.index, 0), spec, plan, target, Topology(target), (None, None))  # type: ignore[arg-type]
    for s in range(trace.num_steps):
        route = StepRoute.build(trace.step(layer_pos, s)[0], trace.token_chiplet, plan)
        shared = any(e >= plan.layer.num_experts for e in route.tokens)
        if _cache_capacity(b, route, len(target.dram_at), moe_layers, shared) >= smallest:
            return False
    return True


class _Busy:
    """Per resource, the busy time of the ops counted so far (module docstring)."""

    def __init__(self, plan: ShardPlan, target: Target, cost: CostModel) -> None:
        self.plan, self.cost, self.channels = plan, cost, target.chiplet.dram_channels
        self.dma: dict[tuple[int, int], int] = defaultdict(int)
        self.compute: dict[int, int] = defaultdict(int)
        self.link: dict[tuple[int, int], int] = defaultdict(int)

    def loads(self, chiplet: int, expert: int, tiles: range) -> int:
        """Tiles of `expert` read at `chiplet`, tile j from its channel j mod channels (EP's and
        TP's placements); returns the busiest of those channels' share of them."""
        busy = self.cost.dram_busy_ns(self.plan.shard_bytes(expert))
        per: dict[int, int] = defaultdict(int)
        for j in tiles:
            per[j % self.channels] += busy
        for ch, t in per.items():
            self.dma[(chiplet, ch)] += t
        return max(per.values(), default=0)

    def home_loads(self, expert: int, times: int = 1) -> None:
        """Every tile of `expert` read `times` times at its FSE-DP home (dp, fsdp's placement)."""
        busy = self.cost.dram_busy_ns(self.plan.shard_bytes(expert)) * times
        for index, k in self.plan.channel_counts(expert).items():
            self.dma[self.plan.channels[index]] += k * busy

    def ffns(self, chiplet: int, expert: int, tokens: int, tiles: int) -> int:
        """`tiles` FFNs of `expert` on `tokens` tokens at `chiplet`; returns their time."""
        t = tiles * self.cost.ffn_ns(self.plan.shard_params(expert), tokens)
        self.compute[chiplet] += t
        return t

    def sends(self, edges: Sequence[tuple[int, int]], nbytes: int, times: int) -> None:
        """`times` sends of `nbytes` over each directed link of `edges`."""
        busy = self.cost.link_busy_ns(nbytes) * times
        for edge in edges:
            self.link[edge] += busy

    def bound(self) -> int:
        lat, link_lat = self.cost.dram_latency_ns, self.cost.link_latency_ns
        return max(max(self.dma.values(), default=-lat) + lat, max(self.compute.values(), default=0),
                   max(self.link.values(), default=-link_lat) + link_lat, 0)


def baseline_step_bound(strategy: str, route: StepRoute, plan: ShardPlan, target: Target, topo: Topology,
                        cost: CostModel, cached: frozenset[int] = frozenset()) -> int:
    """A bound on the makespan of `strategy`'s task graph of one step (`taskgraph.execute`), from
    the loads and FFNs its lowering (`fsedp_compiler/baselines`) makes: which tiles are read where
    and which tokens each FFN takes, without building the graph. `cached` (ep-cache): the experts
    its caches may hold when the step starts (those active in an earlier step of the layer); an
    expert not among them is read from DRAM whether or not it is then kept."""
    busy = _Busy(plan, target, cost)
    n, m = target.num_chiplets, plan.num_shards
    g = m // n
    stores = topo.slice_stores
    first_shared = plan.layer.num_experts
    if strategy in ("tp", "tp-per-expert"):
        for e in route.tokens:
            count = route.count(e)
            for c in range(n):
                busy.loads(stores[c], e, range(c * g, (c + 1) * g))
                busy.ffns(c, e, count, g)
    elif strategy in ("dp", "fsdp"):
        for e, groups in route.tokens.items():
            busy.home_loads(e, len(groups) if strategy == "dp" else 1)
            for c, toks in groups.items():
                busy.ffns(c, e, len(toks), m)
            nbytes = plan.shard_bytes(e)
            for home, k in plan.home_counts(e).items():  # k of its tiles are read at `home`
                if strategy == "dp":  # each tile to each needing chiplet on its own, over shortest paths
                    for c in groups:
                        path = topo.path(home, c)
                        busy.sends(list(zip(path, path[1:])), nbytes, k)
                else:  # fsdp: down the shortest-path tree from the home, each tree link once (`plan_fsdp`)
                    have, edges = {home}, []
                    for c in groups:
                        path = topo.path(home, c)
                        for a, nxt in zip(path, path[1:]):
                            if nxt not in have:
                                have.add(nxt)
                                edges.append((a, nxt))
                    busy.sends(edges, nbytes, k)
    elif strategy in ("ep", "ep-cache"):
        for e in route.tokens:
            count = route.count(e)
            loaded = strategy == "ep" or e not in cached
            if e >= first_shared:  # a slice on every chiplet
                for c in range(n):
                    if loaded:
                        busy.loads(stores[c], e, range(c * g, (c + 1) * g))
                    busy.ffns(c, e, count, g)
            else:  # at its owner
                o = ep_owner(e, target.dram_at)
                if loaded:
                    busy.loads(o, e, range(m))
                busy.ffns(o, e, count, m)
    elif strategy in ("ep-serial", "hydra"):
        return max(busy.bound(), _serial_chain(strategy, route, plan, target, topo, busy))
    else:
        raise ValueError(strategy)
    return busy.bound()


def _serial_chain(strategy: str, route: StepRoute, plan: ShardPlan, target: Target, topo: Topology,
                  busy: _Busy) -> int:
    """ep-serial and hydra (`ep.plan_serial`): counts their loads and FFNs into `busy` and returns
    the longest chain of whole experts on one chiplet: the shared experts' slices first, then its
    routed experts, each one's loads (its busiest channel, then the DRAM latency) after the FFNs
    of the one before and its FFNs after its loads."""
    n, m = target.num_chiplets, plan.num_shards
    g = m // n
    lat = busy.cost.dram_latency_ns
    chain: dict[int, int] = defaultdict(int)
    first_shared = plan.layer.num_experts
    for e in route.tokens:  # shared slices (they run first on every chiplet, in any order)
        if e >= first_shared:
            count = route.count(e)
            for c in range(n):
                load = busy.loads(topo.slice_stores[c], e, range(c * g, (c + 1) * g))
                chain[c] += load + lat + busy.ffns(c, e, count, g)
    probe = _TopoHolder(topo)
    for e in route.tokens:
        if e < first_shared:
            home = ep_owner(e, target.dram_at)
            o = hydra_owner(route, e, home, probe) if strategy == "hydra" else home  # type: ignore[arg-type]
            load = busy.loads(home, e, range(m))
            chain[o] += load + lat + busy.ffns(o, e, route.count(e), m)
    return max(chain.values(), default=0)


class _TopoHolder:
    """What `ep.hydra_owner` reads of a builder: its topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
