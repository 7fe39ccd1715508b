"""Static lower bounds on one layer step's makespan under R1-R6, for the cross-check.

CP-SAT's own bound is weak on real steps (hundreds to thousands of shards): the makespan is set
by one resource kind running back to back, which these single-resource relaxations see at once.
Each holds for every schedule the model (`crosscheck.solve`) admits, whatever the stream
directions (each stream on the virtual ring the stream table assigns it; the links are every
ring's), so the largest never exceeds the optimum:

* **dram**: each DRAM channel runs its loads one after another, and after each the shard still
  needs its shortest tail (DRAM latency, the walk to its last member with cut-through forwarding,
  `streaming.walk_ns`, that member's FFN): the best order is largest tail first (Jackson's rule);
* **compute**: each compute engine runs its FFNs one after another, none before its shard can
  first arrive there: earliest arrival first;
* **link**: each directed link carries the transfers the streams' directions put on it, back to
  back, none before the first shard is loaded, and the last one still needs the link latency and
  an FFN at the receiver, or a forward (which ends a first packet's time after it, R7); the
  directions (CW, CCW, SHORT or SHORT_CCW per stream) minimising
  the busiest link come from a small CP-SAT model of the directions alone (its bound is used, so
  a solve cut short is still safe);
* **global_order** (R6): one stream is last on every DMA channel that holds it: its shards end no
  earlier than their channels' total busy time (less its own later shards'), then need their
  tails, each with the shorter of its home's two directions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ortools.sat.python import cp_model

from fsedp_compiler.crosscheck.cpsat import run_solver
from fsedp_compiler.crosscheck.trips import Patterns, Variants
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.streaming import head_ns, walk_ns

if TYPE_CHECKING:
    from fsedp_compiler.crosscheck.instance import Instance

#: CP-SAT's deterministic time for the direction-only link model: it is solved to optimality
#: in well under that on the systems here, and its bound is valid if it is not.
LINK_WORK_LIMIT = 2.0


@dataclass(frozen=True)
class Bounds:
    """The static bounds (ns), by the resource each relaxes to (module docstring)."""

    dram: int
    compute: int
    link: int
    global_order: int

    def best(self, global_order: bool = True) -> int:
        """The largest bound that holds; R6's only when the global order is kept."""
        return max(self.dram, self.compute, self.link, self.global_order if global_order else 0)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def tails(inst: Instance, sched: StepSchedule, variants: Variants) -> dict[tuple[int, int], dict[int, int]]:
    """Per shard and direction, its tail from its load's end: DRAM latency, the walk to its last
    member (R7), that member's FFN (forwarding overlaps the FFNs before it)."""
    cost = inst.cost
    out: dict[tuple[int, int], dict[int, int]] = {}
    for key, opts in variants.items():
        stream = sched.streams[key[0]]
        out[key] = {d: cost.dram_latency_ns + walk_ns(cost, t.nbytes, len(t.path) - 1)
                    + cost.ffn_ns(t.params, stream.tokens[t.path[-1]]) for (d, _e), t in opts.items()}
    return out


def dram_bound(inst: Instance, variants: Variants, shard_tails: dict[tuple[int, int], dict[int, int]]) -> int:
    """Jackson's rule per DRAM channel (module docstring)."""
    loads: dict[tuple[int, int], list[tuple[int, int]]] = {}  # channel -> (busy, tail) per shard
    for key, opts in variants.items():
        t = next(iter(opts.values()))
        loads.setdefault((t.path[0], t.channel), []).append((inst.cost.dram_busy_ns(t.nbytes),
                                                             min(shard_tails[key].values())))
    best = 0
    for jobs in loads.values():
        clock = 0
        for busy, tail in sorted(jobs, key=lambda j: -j[1]):
            clock += busy
            best = max(best, clock + tail)
    return best


def compute_bound(inst: Instance, sched: StepSchedule, variants: Variants) -> int:
    """Each compute engine's FFNs back to back from their earliest arrivals (module docstring)."""
    cost, n = inst.cost, inst.ring.size
    ffns: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # chiplet -> (release, duration)
    for (si, _j), opts in variants.items():
        stream = sched.streams[si]
        t = next(iter(opts.values()))
        for c in range(n):
            if stream.members >> c & 1:
                arrive = cost.dram_ns(t.nbytes) + min(walk_ns(cost, t.nbytes, o.path.index(c))
                                                      for o in opts.values() if c in o.path)
                ffns[c].append((arrive, cost.ffn_ns(t.params, stream.tokens[c])))
    best = 0
    for jobs in ffns:
        clock = 0
        for release, dur in sorted(jobs):
            clock = max(clock, release) + dur
        best = max(best, clock)
    return best


def link_usage(inst: Instance, variants: Variants) -> dict[tuple[int, int], dict[int, Counter]]:
    """Per (stream, shard home) and direction, the busy time it puts on each directed link
    (all that home's shards share its direction and path)."""
    out: dict[tuple[int, int], dict[int, Counter]] = {}
    for (si, _j), opts in variants.items():
        for (d, _e), t in opts.items():
            per_link = out.setdefault((si, t.path[0]), {}).setdefault(d, Counter())
            busy = inst.cost.link_busy_ns(t.nbytes)
            for u, v in zip(t.path, t.path[1:]):
                per_link[(u, v)] += busy
    return out


def link_head_tail(inst: Instance, sched: StepSchedule, variants: Variants) -> tuple[int, int]:
    """No transfer starts before the first shard can be loaded; after the last one on a link
    the receiver still waits the link latency and computes, or forwards it on (that send ends
    at the earliest `head_ns` after this one, R7)."""
    cost = inst.cost
    trips = [t for opts in variants.values() for t in opts.values()]
    if not trips:
        return 0, 0
    head = min(cost.dram_ns(t.nbytes) for t in trips)
    ffn = min(cost.ffn_ns(t.params, tok) for t in trips for tok in sched.streams[t.stream].tokens if tok)
    return head, min(cost.link_latency_ns + ffn, min(head_ns(cost, t.nbytes) for t in trips))


def balanced_directions(inst: Instance, sched: StepSchedule, variants: Variants, patterns: Patterns,
                        work_limit: float = LINK_WORK_LIMIT) -> tuple[int, dict[int, int]]:
    """The link bound (module docstring), and per stream index the direction of the best
    solution the direction-only model found: the least busy busiest link (empty if none was found)."""
    usage = link_usage(inst, variants)
    if not any(sum(c.values()) for opts in usage.values() for c in opts.values()):
        return 0, {}
    m = cp_model.CpModel()
    terms: dict[tuple[int, int], list[Any]] = {}
    pick: dict[tuple[int, int], Any] = {}
    top = 0
    for si, options in enumerate(patterns):
        loads = {code: Counter() for code in options}
        for code, ways in options.items():
            for home, d in ways.items():
                loads[code].update(usage[(si, home)][d])
        top += max(sum(c.values()) for c in loads.values())
        if len(options) == 1:
            for link, busy in next(iter(loads.values())).items():
                terms.setdefault(link, []).append(busy)
            continue
        for code in options:
            pick[(si, code)] = m.NewBoolVar(f"dir_{si}_{code}")
            for link, busy in loads[code].items():
                terms.setdefault(link, []).append(busy * pick[(si, code)])
        m.AddExactlyOne(pick[(si, code)] for code in options)
    peak = m.NewIntVar(0, top, "peak")
    for items in terms.values():
        m.Add(peak >= sum(items))
    m.Minimize(peak)
    solver, result = run_solver(m, peak, 0.0, work_limit)
    head, tail = link_head_tail(inst, sched, variants)
    found = result.makespan is not None
    chosen = {si: code for (si, code), x in pick.items() if found and solver.Value(x)}
    return head + (result.bound or 0) + tail, chosen


def global_order_bound(inst: Instance, sched: StepSchedule, shard_tails: dict[tuple[int, int], dict[int, int]]) -> int:
    """R6 (module docstring); `shard_tails[(stream, shard)]` maps each direction the shard may
    take to its tail, and each home chooses its own."""
    cost, plan = inst.cost, inst.plan
    channel_busy: dict[tuple[int, int], int] = {}
    per_channel: dict[tuple[int, int], dict[int, list[int]]] = {}
    for si, stream in enumerate(sched.streams):
        busy = cost.dram_busy_ns(plan.shard_bytes(stream.expert))
        for j in range(plan.num_shards):
            key = plan.home(stream.expert, j)
            channel_busy[key] = channel_busy.get(key, 0) + busy
            per_channel.setdefault(key, {}).setdefault(si, []).append(j)
    best: int | None = None
    for si, stream in enumerate(sched.streams):
        busy = cost.dram_busy_ns(plan.shard_bytes(stream.expert))
        last = max(channel_busy[key] - (len(shards) - 1 - i) * busy + min(shard_tails[(si, j)].values())
                   for key, streams in per_channel.items() if si in streams
                   for shards in [streams[si]] for i, j in enumerate(shards))
        best = last if best is None else min(best, last)
    return best or 0


def static_bounds(inst: Instance, sched: StepSchedule, variants: Variants, patterns: Patterns,
                  balanced: tuple[int, dict[int, int]] | None = None) -> Bounds:
    """All four bounds of the module docstring (`balanced`: `balanced_directions`' result, if
    already computed)."""
    shard_tails = tails(inst, sched, variants)
    return Bounds(dram=dram_bound(inst, variants, shard_tails), compute=compute_bound(inst, sched, variants),
                  link=(balanced or balanced_directions(inst, sched, variants, patterns))[0],
                  global_order=global_order_bound(inst, sched, shard_tails))
