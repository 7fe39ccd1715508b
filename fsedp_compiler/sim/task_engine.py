"""The engines of one layer step of a task program (the baselines), event by event.

Every instruction with an id is a task on one engine: LOAD on its DMA channel, SEND / TOKSEND /
REDUCE on the link-out of their port, FFN / ACC on the compute engine, FREE on control (0 ns).
A task becomes ready when every task its WAITs name has its result usable (its end plus the DRAM
or link latency); each engine runs one task at a time, the ready task that became ready first
(ties: the lower id). A buffer filled by a LOAD, or at the receiving end of a transfer, holds its
bytes from the task's start until the last task that waits on it has its result usable, or, for
a kept tile (`load ... keep=1`, a cache), until a FREE names it. Tiles must be present where a
SEND or an FFN uses them: a missing WAIT shows as a located error. A JOIN does no work on no
engine: its result is usable the instant its WAITs are met, and what they filled stays held until
every task waiting on the join has its result usable.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from fsedp_compiler.sim.errors import DeadlockError
from fsedp_compiler.sim.stream_engine import StepRun

LOAD, SEND, TOKSEND, REDUCE, FFN, ACC, FREE = "load", "send", "toksend", "reduce", "ffn", "acc", "free"
JOIN = "join"
TRANSFERS = (SEND, TOKSEND, REDUCE)


@dataclass
class Task:
    """One instruction of a task program, decoded (see `steps.py`)."""

    id: int
    kind: str
    chiplet: int
    engine: tuple
    """("dma", c, ch), ("link", c, port), ("compute", c, 0) or ("control", c, 0)"""
    busy: int
    latency: int
    waits: tuple[int, ...]
    expert: int
    shard: int
    """tile j, or token group g"""
    nbytes: int = 0
    peer: int = -1
    tokens: int = 0
    row: int = 0
    holds: int = 0
    holder: int = -1
    keep: bool = False
    sets: bool = False
    """FFN: on the rows of whole token sets routed to its expert (`sets=1`), not its groups"""
    params: int = 0
    where: tuple[int, int] = (0, 0)
    """(chiplet, record index) of the instruction, for messages"""


@dataclass
class TaskStep:
    layer: int
    step: int
    num_chiplets: int
    tasks: list[Task]
    resident: list[int] = field(default_factory=list)
    """bytes of kept tiles already held when the step starts (caches)"""


class Residency:
    """Kept (cached) tiles per chiplet, across steps: (layer, expert, tile) -> bytes."""

    def __init__(self, n: int) -> None:
        self.tiles: list[dict[tuple[int, int, int], int]] = [{} for _ in range(n)]

    def bytes(self) -> list[int]:
        return [sum(t.values()) for t in self.tiles]


def run_task_step(st: TaskStep, residency: Residency, d_model: int, cost, error, data=None,
                  keep_ops: bool = False) -> StepRun:
    """Execute one task step (module docstring)."""
    tasks = st.tasks
    n = st.num_chiplets
    index = {t.id: i for i, t in enumerate(tasks)}
    waiting = [len(t.waits) for t in tasks]
    waiters: list[list[int]] = [[] for _ in tasks]
    for i, t in enumerate(tasks):
        for w in t.waits:
            waiters[index[w]].append(i)
    uses_left = [len(w) for w in waiters]
    held = residency.bytes()
    peak = list(held)
    present: list[dict[tuple[int, int], int]] = [{} for _ in range(n)]
    for c, tiles in enumerate(residency.tiles):
        for (layer, e, j) in tiles:
            if layer == st.layer:
                present[c][(e, j)] = present[c].get((e, j), 0) + 1
    start = [-1] * len(tasks)
    end = [-1] * len(tasks)
    ready: dict[tuple, list[tuple[int, int]]] = {}
    busy_engines: set[tuple] = set()
    events: list[tuple[int, int, int]] = []  # (time, kind, task): 0 engine free, 1 result usable
    run = StepRun(0)
    busy_time: dict[tuple, int] = {}
    now = 0
    done = 0

    def release(i: int) -> None:
        t = tasks[i]
        if t.kind == JOIN:  # every task waiting on it is done: so is its hold on what it joined
            for w in t.waits:
                k = index[w]
                uses_left[k] -= 1
                if uses_left[k] == 0:
                    release(k)
        elif t.holds and not t.keep:
            held[t.holder] -= t.holds
            if t.kind in (LOAD, SEND):
                key = (t.expert, t.shard)
                present[t.holder][key] -= 1

    def wake(i: int) -> int:
        """Task i's WAITs are met now: queue it on its engine, or resolve a JOIN at once.
        Returns the tasks made usable."""
        t = tasks[i]
        if t.kind != JOIN:
            heapq.heappush(ready.setdefault(t.engine, []), (now, i))
            touched.add(t.engine)
            return 0
        start[i] = end[i] = now
        if not waiters[i]:
            release(i)
        count = 1
        for j in waiters[i]:
            waiting[j] -= 1
            if not waiting[j]:
                count += wake(j)
        return count

    def try_start(eng: tuple) -> None:
        queue = ready.get(eng)
        if eng in busy_engines or not queue:
            return
        _, i = heapq.heappop(queue)
        t = tasks[i]
        c = t.chiplet
        if t.kind in (FFN, SEND) and not present[c].get((t.expert, t.shard)):
            raise error(*t.where, f"{t.kind} of tile e{t.expert} j{t.shard} starts but the tile is not in a buffer "
                                  "here (a missing wait?)")
        if t.kind == FREE:
            key = (st.layer, t.expert, t.shard)
            size = residency.tiles[c].pop(key, None)
            if size is None:
                raise error(*t.where, f"frees tile e{t.expert} j{t.shard}, which is not kept here")
            held[c] -= size
            present[c][(t.expert, t.shard)] -= 1
        start[i] = now
        if t.holds:
            held[t.holder] += t.holds
            if held[t.holder] > peak[t.holder]:
                peak[t.holder] = held[t.holder]
        if t.keep:
            residency.tiles[c][(st.layer, t.expert, t.shard)] = t.holds
        busy_engines.add(eng)
        busy_time[eng] = busy_time.get(eng, 0) + t.busy
        if data is not None:
            data.task_start(t)
        if keep_ops and t.kind != FREE:
            unit = t.engine[2] if t.kind == LOAD else t.peer if t.kind in TRANSFERS else 0
            run.ops.append((t.kind, c, unit, t.expert, t.shard, now, now + t.busy))
        heapq.heappush(events, (now + t.busy, 0, i))

    touched: set[tuple] = set()
    # the ready ones listed before any wake: a JOIN wakes its dependents itself
    for i in [i for i in range(len(tasks)) if not waiting[i]]:
        done += wake(i)
    for eng in sorted(touched):
        try_start(eng)
    while events:
        now = events[0][0]
        touched = set()
        while events and events[0][0] == now:
            _, kind, i = heapq.heappop(events)
            t = tasks[i]
            if kind == 0:
                busy_engines.discard(t.engine)
                touched.add(t.engine)
                end[i] = now
                heapq.heappush(events, (now + t.latency, 1, i))
                continue
            done += 1
            if data is not None and t.kind in TRANSFERS:
                data.task_done(t)
            if t.kind in (LOAD, SEND):  # the tile is usable where it landed
                key = (t.expert, t.shard)
                present[t.holder][key] = present[t.holder].get(key, 0) + 1
            if not waiters[i]:
                release(i)
            for w in t.waits:
                k = index[w]
                uses_left[k] -= 1
                if uses_left[k] == 0:
                    release(k)
            for j in waiters[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    eng = tasks[j].engine
                    if eng[0] == "control" and tasks[j].kind == JOIN:
                        done += wake(j)
                    else:  # wake(j), inlined: the hot path
                        heapq.heappush(ready.setdefault(eng, []), (now, j))
                        touched.add(eng)
        for eng in sorted(touched):
            try_start(eng)
    if done != len(tasks):
        raise DeadlockError(_deadlock_report(st, tasks, waiting, start, index, error))
    run.makespan = max((e + tasks[i].latency for i, e in enumerate(end)), default=0)
    run.events = len(tasks)
    run.peak_bytes = peak
    chain = [0] * len(tasks)
    for i, t in enumerate(tasks):  # waits name earlier tasks (checked when decoding)
        chain[i] = max((chain[index[w]] for w in t.waits), default=0) + t.busy + t.latency
        c = t.chiplet
        if t.kind == LOAD:
            run.dram_bytes += t.nbytes
        elif t.kind in TRANSFERS:
            run.d2d_bytes += t.nbytes
            run.link_bytes[(c, t.peer)] = run.link_bytes.get((c, t.peer), 0) + t.nbytes
        elif t.kind == FFN:
            run.macs += t.params * t.tokens
            run.ffn_bytes += t.nbytes
        elif t.kind == ACC:
            run.macs += d_model * t.tokens
    for eng, b in busy_time.items():
        kind, c, unit = eng
        if kind == "dma":
            run.busy[(c, f"dma{unit}")] = run.busy.get((c, f"dma{unit}"), 0) + b
        elif kind == "link":
            peer = next(t.peer for t in tasks if t.engine == eng)
            run.busy[(c, f"link->{peer}")] = run.busy.get((c, f"link->{peer}"), 0) + b
        elif kind == "compute":
            run.busy[(c, "compute")] = run.busy.get((c, "compute"), 0) + b
    run.bound = max(max(busy_time.values(), default=0), max(chain, default=0))
    return run


def _where(error, t: Task) -> str:
    err = error(*t.where, "")
    return f"{err.location()}: {err.message.rstrip(': ')}"


def _deadlock_report(st: TaskStep, tasks: list[Task], waiting: list[int], start: list[int],
                     index: dict[int, int], error) -> str:
    lines = [f"deadlock in layer {st.layer} step {st.step}: tasks wait on tasks that never finish"]
    shown = 0
    for i, t in enumerate(tasks):
        if start[i] < 0 and waiting[i] and shown < 8:
            blockers = [w for w in t.waits if start[index[w]] < 0]
            lines.append(f"  chiplet {t.chiplet}: {t.kind} id={t.id} waits for id {', '.join(map(str, blockers[:4]))} "
                         f"({_where(error, t)})")
            shown += 1
    return "\n".join(lines)
