"""Task graphs: one layer step of a baseline strategy as ops on resources, and their execution.

A baseline (EP, TP, DP, ...) lowers a layer step to a DAG of tasks. Every task occupies one
resource (a DRAM channel, a directed D2D link or a chiplet's compute engine) for `busy` ns; its
result is usable `latency` ns after that (DRAM / link latency). A task's result may hold SRAM
on a chiplet (`holds` bytes on `holder`, e.g. a loaded weight tile, received tokens) from the
task's start until every task that depends on it has finished.

Buffer reuse is static, as a compiler allocates it: a strategy with B tile buffers makes the
load into a buffer depend on the last use of the tile that held it before. So the graph is a
DAG and `execute` cannot deadlock; it is a work-conserving list scheduler where each resource
serves the ready task that became ready first (ties: the lower task index, i.e. program order),
the same rule the FSE-DP engine model uses for links and compute (`streaming.execute`).

A JOIN is a task without work or resource: its result is usable the moment its last dependency's
is, and it passes holds on (what it depends on stays held until its own dependents have
finished). m FFNs that each need all m tiles of an expert then take 2m dependencies, not m x m,
with the same timing and SRAM.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field

from fsedp_compiler.costmodel import CostModel

#: Task kinds (each becomes one instruction on `chiplet`, plus a receive on `peer` for transfers).
LOAD, SEND, FFN, TOKSEND, REDUCE, ACC, FREE = "load", "send", "ffn", "toksend", "reduce", "acc", "free"
JOIN = "join"
TRANSFERS = (SEND, TOKSEND, REDUCE)


@dataclass
class Task:
    """One op of a layer step. `resource` is ("dma", chiplet, channel), ("link", src, dst) or
    ("compute", chiplet); `shard` is the weight tile (LOAD, SEND, FFN) or the token group
    (TOKSEND, REDUCE, ACC); `tokens` are the token ids an FFN or ACC works on; `row` and `rows`
    the rows of the group a TOKSEND, REDUCE or ACC covers (a chunk of it, or all)."""

    kind: str
    chiplet: int
    resource: tuple[str, int, int]
    busy: int
    latency: int
    deps: tuple[int, ...]
    expert: int
    shard: int
    nbytes: int = 0
    peer: int = -1
    tokens: tuple[int, ...] = ()
    params: int = 0
    holds: int = 0
    holder: int = -1
    row: int = 0
    rows: int = 0
    keep: bool = False
    """A cache fill: its bytes stay held after its readers, until a FREE releases them."""
    sets: bool = False
    """FFN: on the rows of whole token sets routed to its expert, not on its expert's token groups."""
    release: int = 0
    """FREE: bytes of a kept tile (of an earlier step or this one) released on `chiplet` at its start."""


@dataclass
class TaskGraph:
    """The tasks of one layer step, in program order, and the SRAM held when it starts (caches)."""

    layer: int
    step: int
    tasks: list[Task] = field(default_factory=list)
    resident: list[int] = field(default_factory=list)

    def add(self, task: Task) -> int:
        deps = task.deps
        if len(deps) > 1:
            deps = tuple(sorted(set(deps)))
        task.deps = deps = tuple(deps)
        assert not deps or 0 <= deps[0] <= deps[-1] < len(self.tasks), \
            "dependencies come earlier in program order"
        self.tasks.append(task)
        return len(self.tasks) - 1


@dataclass
class GraphTimeline:
    """Start and end (ns) of every task, the step's makespan and peak SRAM bytes per chiplet."""

    start: list[int]
    end: list[int]
    makespan: int
    peak_bytes: list[int]


def execute(graph: TaskGraph, num_chiplets: int) -> GraphTimeline:
    """List-schedule the graph (module docstring): each resource serves one task at a time."""
    tasks = graph.tasks
    n = len(tasks)
    waiting = [len(t.deps) for t in tasks]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(tasks):
        for d in t.deps:
            dependents[d].append(i)
    uses_left = [len(dependents[i]) for i in range(n)]
    held = list(graph.resident) if graph.resident else [0] * num_chiplets
    peak = list(held)
    start = [-1] * n
    end = [-1] * n
    ready: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    busy: set[tuple] = set()
    events: list[tuple[int, int, int]] = []  # (time, kind, task): 0 = resource free, 1 = result usable
    now = 0

    def release(i: int) -> None:
        t = tasks[i]
        if t.kind == JOIN:  # its dependents are done: so is its hold on what it joined
            for d in t.deps:
                uses_left[d] -= 1
                if uses_left[d] == 0:
                    release(d)
        elif t.holds and not t.keep:
            held[t.holder] -= t.holds

    def wake(i: int) -> int:
        """Task i's last dependency is usable now: queue it, or resolve a JOIN at once (it never
        occupies a resource, so it becomes usable within the same instant). Returns the tasks
        made usable."""
        t = tasks[i]
        if t.kind != JOIN:
            heapq.heappush(ready[t.resource], (now, i))
            touched.add(t.resource)
            return 0
        start[i] = end[i] = now
        if not dependents[i]:
            release(i)
        count = 1
        for j in dependents[i]:
            waiting[j] -= 1
            if not waiting[j]:
                count += wake(j)
        return count

    def try_start(res: tuple) -> None:
        queue = ready[res]
        if res in busy or not queue:
            return
        _, i = heapq.heappop(queue)
        t = tasks[i]
        start[i] = now
        if t.release:
            held[t.chiplet] -= t.release
        if t.holds:
            held[t.holder] += t.holds
            if held[t.holder] > peak[t.holder]:
                peak[t.holder] = held[t.holder]
        busy.add(res)
        heapq.heappush(events, (now + t.busy, 0, i))

    touched: set[tuple] = set()
    done = 0
    # the ready ones listed before any wake: a JOIN wakes its dependents itself
    for i in [i for i in range(n) if not waiting[i]]:
        done += wake(i)
    for res in sorted(touched):
        try_start(res)
    while events:
        now = events[0][0]
        touched = set()
        while events and events[0][0] == now:
            _, kind, i = heapq.heappop(events)
            t = tasks[i]
            if kind == 0:
                busy.discard(t.resource)
                touched.add(t.resource)
                end[i] = now
                heapq.heappush(events, (now + t.latency, 1, i))
                continue
            done += 1
            if not dependents[i]:
                release(i)
            for d in t.deps:
                uses_left[d] -= 1
                if uses_left[d] == 0:
                    release(d)
            for j in dependents[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    res = tasks[j].resource
                    if res[0] == "control" and tasks[j].kind == JOIN:
                        done += wake(j)
                    else:  # wake(j), inlined: the hot path
                        heapq.heappush(ready[res], (now, j))
                        touched.add(res)
        for res in sorted(touched):
            try_start(res)
    assert done == n, "a task graph is a DAG: every task runs"
    makespan = max((e + tasks[i].latency for i, e in enumerate(end)), default=0)
    return GraphTimeline(start, end, makespan, peak)


def lower_bound(graph: TaskGraph) -> int:
    """A bound no schedule of this graph beats: the busiest resource's total busy time, and the
    longest dependency chain (busy + latency along it)."""
    load: dict[tuple, int] = defaultdict(int)
    finish = [0] * len(graph.tasks)
    for i, t in enumerate(graph.tasks):
        load[t.resource] += t.busy
        finish[i] = max((finish[d] for d in t.deps), default=0) + t.busy + t.latency
    return max(max(load.values(), default=0), max(finish, default=0))


def transfer_cost(cost: CostModel, kind: str, nbytes: int) -> tuple[int, int]:
    """(busy, latency) of a transfer task."""
    if kind == LOAD:
        return cost.dram_busy_ns(nbytes), cost.dram_latency_ns
    return cost.link_busy_ns(nbytes), cost.link_latency_ns
