"""The engines of one FSE-DP layer step (stream programs, static or dynamic), event by event.

A shard in flight carries its header: tag (expert, shard), size, direction, `entry` (where it
starts computing), `end` (where its trajectory ends) and whether it computes yet. Per chiplet:

* one DMA engine per DRAM channel runs its loads strictly in program order (R6); a load starts
  when its pool has two free shard buffers (R4: injection needs two) and takes one;
* a shard that arrives (loaded or received) computes here if it has reached its entry and this
  chiplet is in S_e, and goes on unless this is its end; each use needs budget from the step's
  FFNS / SENDS ranges (a shard nobody asked for is a located error);
* a link-out engine per port sends the ready shard that arrived first (ties: table order,
  shard, hop) once the neighbour has a free buffer (bubble flow control) and a posted receive
  (RECVS) for the expert; the compute engine likewise runs the first ready FFN;
* a buffer is freed, against the FREES budget, when its last local use ends (R5).

Pools: B buffers per chiplet, split ceil/floor between the directions when a step streams both
ways. At each instant all completions are handled first, then engines start in a fixed order:
link-outs (by sender, receiver), compute engines, DMA engines (so a load's "two free" counts
every buffer taken at that instant). Integer nanoseconds throughout.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from .errors import DeadlockError, ProgramError

# event kinds
_DMA_FREE, _ARRIVE, _SENT, _COMPUTED = 0, 1, 2, 3
# visit fields (a list per shard per chiplet visit)
POS, EXPERT, SHARD, NBYTES, ENTRY, END, DIR, COMPUTING, CHIPLET, HOP, USES = range(11)


@dataclass
class StreamStep:
    """One layer step's stream work, decoded and checked (see `steps.py`)."""

    layer: int
    step: int
    num_chiplets: int
    buffers: int
    dtype_bytes: int
    members: dict[int, int]
    """expert -> S_e bitmask"""
    pos: dict[int, int]
    """expert -> position in the stream table"""
    dirs: set[int]
    """direction bits present in the table (0 cw, 1 ccw)"""
    dma: list[tuple[int, int, list[tuple]]]
    """(chiplet, channel, loads) per DMA engine, sorted; a load is (pos, e, j, bytes, entry, end, dir)"""
    neighbour: list[tuple[int, ...]]
    back_port: list[tuple[int, ...]]
    send_port: list[dict[int, int]]
    send_left: list[dict[int, int]]
    send_bytes: list[dict[int, int]]
    recv_left: list[list[dict[int, int]]]
    recv_bytes: list[list[dict[int, int]]]
    ffn_left: list[dict[int, int]]
    ffn_tokens: list[dict[int, int]]
    free_left: list[dict[int, int]]
    where: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    """(role, chiplet, expert[, port]) -> (chiplet, record index) of the instruction, for messages"""
    error: object = None
    """(chiplet, record index, message) -> a located error"""


@dataclass
class StepRun:
    """What one step did: its makespan, every op (if kept), busy time and bytes per engine."""

    makespan: int
    ops: list[tuple] = field(default_factory=list)
    """(kind, chiplet, unit, expert, shard, start, end): kind load/send/ffn; unit = channel, the
    receiving chiplet, or 0"""
    busy: dict[tuple[int, str], int] = field(default_factory=dict)
    link_bytes: dict[tuple[int, int], int] = field(default_factory=dict)
    dram_bytes: int = 0
    d2d_bytes: int = 0
    macs: int = 0
    ffn_bytes: int = 0
    peak_bytes: list[int] = field(default_factory=list)
    events: int = 0
    bound: int = 0


def run_stream_step(st: StreamStep, cost, data=None, keep_ops: bool = False) -> StepRun:
    """Execute one step (module docstring); `data` (functional mode) sees every FFN."""
    n = st.num_chiplets
    if len(st.dirs) > 1:
        split = {0: (st.buffers + 1) // 2, 1: st.buffers // 2}
    else:
        split = {d: st.buffers for d in (st.dirs or {0})}
    free = [[split.get(0, 0), split.get(1, 0)] for _ in range(n)]
    used = [0] * n
    held = [0] * n
    peak_bytes = [0] * n
    members, neighbour, back_port = st.members, st.neighbour, st.back_port
    send_port, send_left, send_bytes = st.send_port, st.send_left, st.send_bytes
    recv_left, recv_bytes = st.recv_left, st.recv_bytes
    ffn_left, ffn_tokens, free_left = st.ffn_left, st.ffn_tokens, st.free_left

    dma = st.dma
    dma_head = [0] * len(dma)
    dma_busy = [False] * len(dma)
    dma_of: list[list[int]] = [[] for _ in range(n)]
    for k, (c, _, _) in enumerate(dma):
        dma_of[c].append(k)
    # link engines, indexed in (sender, port) = (sender, receiver) order
    link_id: list[list[int]] = []
    link_from: list[tuple[int, int]] = []
    for c in range(n):
        link_id.append([len(link_from) + p for p in range(len(neighbour[c]))])
        link_from.extend((c, p) for p in range(len(neighbour[c])))
    links_into: list[list[int]] = [[] for _ in range(n)]
    for k, (c, p) in enumerate(link_from):
        links_into[neighbour[c][p]].append(k)
    link_ready: list[list] = [[] for _ in link_from]
    link_busy = [False] * len(link_from)
    comp_ready: list[list] = [[] for _ in range(n)]
    comp_busy = [False] * n

    dram_lat, link_lat = cost.dram_latency_ns, cost.link_latency_ns
    dram_ns, link_ns, ffn_ns = cost.dram_busy_ns, cost.link_busy_ns, cost.ffn_ns
    dtype_bytes = st.dtype_bytes
    dram_cache: dict[int, int] = {}
    link_cache: dict[int, int] = {}
    ffn_cache: dict[tuple[int, int], int] = {}
    run = StepRun(0)
    ops = run.ops
    busy_dma = [0] * len(dma)
    busy_link = [0] * len(link_from)
    busy_comp = [0] * n
    bytes_link = [0] * len(link_from)
    events: list[tuple] = []
    seq = 0
    now = 0
    pending = 0  # visits whose buffer is still held, plus loads not yet issued
    for _, _, loads in dma:
        pending += len(loads)
    dirty_link: set[int] = set()
    dirty_comp: set[int] = set()
    dirty_dma: set[int] = set(range(len(dma)))
    macs = 0
    ffn_bytes = 0
    moved = 0  # sends and FFNs started (with the loads: the step's element-ops)

    def err(key: tuple, message: str) -> ProgramError:
        return _located(st, key, message)

    def arrive(v: list) -> None:
        nonlocal pending, seq
        c, e = v[CHIPLET], v[EXPERT]
        if not v[COMPUTING] and c == v[ENTRY]:
            v[COMPUTING] = True
        uses = 0
        if v[COMPUTING] and members[e] >> c & 1:
            left = ffn_left[c].get(e, 0)
            if left <= 0:
                raise err(("ffns", c, e), f"shard e{e} j{v[SHARD]} reaches S_e past its entry, but no FFN is left "
                                          f"for it (ffns of expert {e} here: {ffn_count(c, e)})")
            ffn_left[c][e] = left - 1
            heapq.heappush(comp_ready[c], (now, v[POS], v[SHARD], v[HOP], v))
            dirty_comp.add(c)
            uses += 1
        if not (v[COMPUTING] and c == v[END]):
            port = send_port[c].get(e)
            if port is None:
                raise err(("sends", c, e), f"shard e{e} j{v[SHARD]} goes on past chiplet {c} but the program sends "
                                           f"no shard of expert {e} from here")
            left = send_left[c][e]
            if left <= 0:
                raise err(("sends", c, e), f"shard e{e} j{v[SHARD]} goes on, but the sends of expert {e} are used up")
            send_left[c][e] = left - 1
            k = link_id[c][port]
            heapq.heappush(link_ready[k], (now, v[POS], v[SHARD], v[HOP], v))
            dirty_link.add(k)
            uses += 1
        v[USES] = uses
        if uses == 0:
            release(v)

    def ffn_count(c: int, e: int) -> str:
        return "none" if e not in ffn_tokens[c] else "used up"

    def release(v: list) -> None:
        nonlocal pending
        c, e = v[CHIPLET], v[EXPERT]
        left = free_left[c].get(e, 0)
        if left <= 0:
            raise err(("frees", c, e), f"shard e{e} j{v[SHARD]} is done here but no FREE is left for expert {e}")
        free_left[c][e] = left - 1
        free[c][v[DIR]] += 1
        used[c] -= 1
        held[c] -= v[NBYTES]
        pending -= 1
        dirty_dma.update(dma_of[c])
        dirty_link.update(links_into[c])

    def take(c: int, d: int, nbytes: int) -> None:
        free[c][d] -= 1
        used[c] += 1
        held[c] += nbytes
        if held[c] > peak_bytes[c]:
            peak_bytes[c] = held[c]

    def start_dma(k: int) -> None:
        nonlocal seq, pending
        if dma_busy[k]:
            return
        c, ch, loads = dma[k]
        head = dma_head[k]
        if head >= len(loads):
            return
        pos, e, j, nbytes, entry, end, d = loads[head]
        if free[c][d] < 2:
            return
        dma_head[k] = head + 1
        take(c, d, nbytes)
        length = dram_cache.get(nbytes)
        if length is None:
            length = dram_cache[nbytes] = dram_ns(nbytes)
        dma_busy[k] = True
        busy_dma[k] += length
        run.dram_bytes += nbytes
        if keep_ops:
            ops.append(("load", c, ch, e, j, now, now + length))
        v = [pos, e, j, nbytes, entry, end, d, False, c, 0, 0]
        heapq.heappush(events, (now + length, seq, _DMA_FREE, k, None))
        heapq.heappush(events, (now + length + dram_lat, seq + 1, _ARRIVE, v, None))
        seq += 2

    def start_link(k: int) -> None:
        nonlocal seq, pending, moved
        ready = link_ready[k]
        if link_busy[k] or not ready:
            return
        v = ready[0][4]
        c, p = link_from[k]
        nxt = neighbour[c][p]
        d = v[DIR]
        if free[nxt][d] < 1:
            return
        e = v[EXPERT]
        back = back_port[c][p]
        posted = recv_left[nxt][back]
        if posted.get(e, 0) <= 0:
            return  # no receive posted: the neighbour never asked for it (a deadlock if it stays so)
        heapq.heappop(ready)
        posted[e] -= 1
        nbytes = v[NBYTES]
        if send_bytes[c][e] != nbytes:
            raise err(("sends", c, e), f"sends of expert {e} move {send_bytes[c][e]} bytes per shard, "
                                       f"its shards are {nbytes} bytes")
        if recv_bytes[nxt][back][e] != nbytes:
            raise err(("recvs", nxt, e, back), f"recvs of expert {e} expect {recv_bytes[nxt][back][e]} bytes per "
                                               f"shard, its shards are {nbytes} bytes")
        take(nxt, d, nbytes)
        pending += 1
        moved += 1
        length = link_cache.get(nbytes)
        if length is None:
            length = link_cache[nbytes] = link_ns(nbytes)
        link_busy[k] = True
        busy_link[k] += length
        bytes_link[k] += nbytes
        if keep_ops:
            ops.append(("send", c, nxt, e, v[SHARD], now, now + length))
        w = [v[POS], e, v[SHARD], nbytes, v[ENTRY], v[END], d, v[COMPUTING], nxt, v[HOP] + 1, 0]
        heapq.heappush(events, (now + length, seq, _SENT, k, v))
        heapq.heappush(events, (now + length + link_lat, seq + 1, _ARRIVE, w, None))
        seq += 2

    def start_compute(c: int) -> None:
        nonlocal seq, macs, ffn_bytes, moved
        ready = comp_ready[c]
        if comp_busy[c] or not ready:
            return
        v = heapq.heappop(ready)[4]
        e = v[EXPERT]
        tokens = ffn_tokens[c][e]
        params = v[NBYTES] // dtype_bytes
        key = (params, tokens)
        length = ffn_cache.get(key)
        if length is None:
            length = ffn_cache[key] = ffn_ns(params, tokens)
        comp_busy[c] = True
        moved += 1
        busy_comp[c] += length
        macs += params * tokens
        ffn_bytes += v[NBYTES]
        if keep_ops:
            ops.append(("ffn", c, 0, e, v[SHARD], now, now + length))
        if data is not None:
            data.stream_ffn(c, e, v[SHARD], tokens)
        heapq.heappush(events, (now + length, seq, _COMPUTED, c, v))
        seq += 1

    def kick() -> None:
        if dirty_link:
            for k in sorted(dirty_link):
                start_link(k)
            dirty_link.clear()
        if dirty_comp:
            for c in sorted(dirty_comp):
                start_compute(c)
            dirty_comp.clear()
        if dirty_dma:
            for k in sorted(dirty_dma):
                start_dma(k)
            dirty_dma.clear()

    kick()
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, _, kind, a, b = heapq.heappop(events)
            if kind == _ARRIVE:
                arrive(a)
            elif kind == _SENT:
                link_busy[a] = False
                dirty_link.add(a)
                b[USES] -= 1
                if b[USES] == 0:
                    release(b)
            elif kind == _COMPUTED:
                comp_busy[a] = False
                dirty_comp.add(a)
                b[USES] -= 1
                if b[USES] == 0:
                    release(b)
            else:
                dma_busy[a] = False
                dirty_dma.add(a)
        kick()
    pending_loads = sum(len(loads) - dma_head[k] for k, (_, _, loads) in enumerate(dma))
    if pending_loads or any(link_ready) or any(comp_ready) or sum(used):
        raise DeadlockError(_deadlock_report(st, dma, dma_head, free, link_from, link_ready, comp_ready, used))
    _check_budgets(st)
    run.makespan = now
    run.events = sum(dma_head) + moved
    run.peak_bytes = peak_bytes
    run.macs, run.ffn_bytes = macs, ffn_bytes
    for k, (c, ch, _) in enumerate(dma):
        if busy_dma[k]:
            run.busy[(c, f"dma{ch}")] = busy_dma[k]
    for k, (c, p) in enumerate(link_from):
        if busy_link[k]:
            nxt = neighbour[c][p]
            run.busy[(c, f"link->{nxt}")] = busy_link[k]
            run.link_bytes[(c, nxt)] = bytes_link[k]
            run.d2d_bytes += bytes_link[k]
    for c in range(n):
        if busy_comp[c]:
            run.busy[(c, "compute")] = busy_comp[c]
    dram_bound = max(busy_dma, default=0) + (dram_lat if any(busy_dma) else 0)
    run.bound = max(dram_bound, max(busy_comp, default=0), max(busy_link, default=0))
    return run


def _located(st: StreamStep, key: tuple, message: str) -> ProgramError:
    """An error about the range instruction `key` names, at its record when it exists."""
    where = st.where.get(key) or st.where.get(("stream", key[1], key[2]))  # else the stream's table row
    text = f"layer {st.layer} step {st.step}: {message}"
    if where is not None and st.error is not None:
        return st.error(*where, text)  # type: ignore[operator]
    return ProgramError(f"chiplet {key[1]}, {text}")


def _check_budgets(st: StreamStep) -> None:
    """Every range must have been used up: a range that asked for more is a located error."""
    for role, table in (("ffns", st.ffn_left), ("sends", st.send_left), ("frees", st.free_left)):
        for c, left in enumerate(table):
            for e, k in left.items():
                if k:
                    raise _located(st, (role, c, e), f"{k} of the {role} of expert {e} on chiplet {c} were never "
                                                     "needed")
    for c, ports in enumerate(st.recv_left):
        for p, left in enumerate(ports):
            for e, k in left.items():
                if k:
                    raise _located(st, ("recvs", c, e, p), f"{k} receives of expert {e} on chiplet {c} port {p} "
                                                            "were never matched by a send")


def _deadlock_report(st, dma, dma_head, free, link_from, link_ready, comp_ready, used) -> str:
    names = ("cw", "ccw")
    lines = [f"deadlock in layer {st.layer} step {st.step}: no engine can start while work remains"]
    for k, (c, ch, loads) in enumerate(dma):
        if dma_head[k] < len(loads):
            _, e, j, _, _, _, d = loads[dma_head[k]]
            lines.append(f"  chiplet {c} dma{ch}: load e{e} j{j} waits for 2 free {names[d]} buffers "
                         f"(has {free[c][d]})")
    for k, (c, p) in enumerate(link_from):
        if link_ready[k]:
            v = link_ready[k][0][4]
            nxt = st.neighbour[c][p]
            back = st.back_port[c][p]
            if st.recv_left[nxt][back].get(v[EXPERT], 0) <= 0:
                why = f"a receive posted by chiplet {nxt} for expert {v[EXPERT]} (its recvs on port {back})"
            else:
                why = f"a free {names[v[DIR]]} buffer at chiplet {nxt} (has {free[nxt][v[DIR]]})"
            lines.append(f"  chiplet {c} link to {nxt}: send e{v[EXPERT]} j{v[SHARD]} waits for {why}; "
                         f"{len(link_ready[k])} shard(s) queued")
    for c, ready in enumerate(comp_ready):
        if ready:
            lines.append(f"  chiplet {c} compute: {len(ready)} FFN(s) ready but not run")
    for c, u in enumerate(used):
        if u:
            lines.append(f"  chiplet {c}: {u} shard buffer(s) held")
    return "\n".join(lines)
