"""The engines of one FSE-DP layer step (stream programs, static or dynamic), event by event.

A shard in flight carries its header: tag (expert, shard), size, direction, `entry` (where it
starts computing), `end` (where its trajectory ends) and whether it computes yet. Per chiplet:

* one DMA engine per DRAM channel runs its loads strictly in program order (R6); a load starts
  when its chiplet has two free buffers that no virtual network holds (one when B < networks +
  2; R4, below) and takes one;
* a shard that arrives (loaded or received) computes here if it has reached its entry and this
  chiplet is in S_e, and goes on unless this is its end; each use needs budget from the step's
  FFNS / SENDS ranges (a shard nobody asked for is a located error);
* a link-out engine per port sends the ready shard that arrived first (ties: table order,
  shard, hop) once the neighbour admits it (R4, below) and has posted a receive (RECVS) for the
  expert; the compute engine likewise runs the first ready FFN;
* cut-through (R7): a shard sent to a chiplet it goes on from is ready to go on there when its
  first packet (`PACKET_BYTES`) has arrived, ready for its FFN when all of it has;
* a buffer is freed, against the FREES budget, when its last local use ends (R5).

Buffers (R4): one pool of B per chiplet for both directions (virtual networks). A network holds
one free slot at a chiplet where its critical bubble is, or (two networks in the step) where it
has no shard: a forward may use its own network's slot, a load neither's; a forward that takes
its network's bubble moves the bubble to the buffer it leaves, landing when that is freed. Every
network's bubble starts on the highest-numbered chiplet without DRAM (else chiplet 0). At each instant all completions are handled first, then engines start in a fixed order:
link-outs (by sender, receiver), compute engines, DMA engines (so a load's "two free" counts
every buffer taken at that instant). Integer nanoseconds throughout.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from fsedp_compiler.sim.errors import DeadlockError, ProgramError

# event kinds
_DMA_FREE, _ARRIVE, _SENT, _COMPUTED, _HEAD = 0, 1, 2, 3, 4
#: R7, cut-through: links move shards in packets of this many bytes; a shard that goes on from a
#: chiplet is forwarded once its first packet is there, its FFN waits for the last
PACKET_BYTES = 4096
# visit fields (a list per shard per chiplet visit)
POS, EXPERT, SHARD, NBYTES, ENTRY, END, DIR, COMPUTING, CHIPLET, HOP, USES, HERE, TAIL = range(13)


@dataclass
class StreamStep:
    """One layer step's stream work, decoded and checked (see `steps.py`)."""

    layer: int
    step: int
    num_chiplets: int
    buffers: int
    bubble_home: int
    """the chiplet every network's critical bubble starts on (R4)"""
    dtype_bytes: int
    experts: list[int]
    """the stream table: expert of each position"""
    members: list[int]
    """S_e bitmask of each position"""
    dirs: set[int]
    """the virtual networks the step's shards use (2 x ring + direction bit: 0 cw, 1 ccw)"""
    dma: list[tuple[int, int, list[tuple]]]
    """(chiplet, channel, loads) per DMA engine, sorted; a load is (pos, e, j, bytes, entry, end, dir)"""
    neighbour: list[tuple[int, ...]]
    back_port: list[tuple[int, ...]]
    # budgets of the step's ranges, [chiplet][position] (receives: [chiplet][port][position];
    # sends: [chiplet][2 x position + direction bit], as a SHORT stream's shards leave both ways)
    send_port: list[list[int]]
    """-1: no sends"""
    send_left: list[list[int]]
    send_bytes: list[list[int]]
    recv_left: list[list[list[int]]]
    recv_bytes: list[list[list[int]]]
    ffn_left: list[list[int]]
    ffn_tokens: list[list[int]]
    free_left: list[list[int]]
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
    nets = sorted(st.dirs or {0})  # virtual networks in use: 2 x ring + direction bit
    escape = len(nets) > 1
    width = nets[-1] + 1
    bubble = [-1] * width  # chiplet of each network's critical bubble (-1: moving, or unused)
    for d in nets:
        bubble[d] = st.bubble_home
    moving: list = [None] * width  # the visit whose buffer's release lands the bubble
    free = [st.buffers] * n
    count = [[0] * width for _ in range(n)]  # shards of each network held per chiplet
    holds = [len(nets) if escape else 0 for _ in range(n)]  # free slots the networks hold
    holds[st.bubble_home] = len(nets)
    need = 2 if st.buffers >= len(nets) + 2 else 1  # free slots beyond the held ones a load needs
    used = [0] * n
    held = [0] * n
    peak_bytes = [0] * n
    neighbour, back_port = st.neighbour, st.back_port
    experts, mem = st.experts, st.members
    link_id: list[list[int]] = []
    link_from: list[tuple[int, int]] = []
    for c in range(n):
        link_id.append([len(link_from) + p for p in range(len(neighbour[c]))])
        link_from.extend((c, p) for p in range(len(neighbour[c])))
    # the budgets are used up as the step runs: work on copies (the step stays as decoded)
    ffn_left = [row[:] for row in st.ffn_left]
    ffn_tokens = st.ffn_tokens
    free_left = [row[:] for row in st.free_left]
    send_left = [row[:] for row in st.send_left]
    send_link = [[link_id[c][p] if p >= 0 else -1 for p in st.send_port[c]] for c in range(n)]
    send_bytes = st.send_bytes
    recv_left = [[row[:] for row in ports] for ports in st.recv_left]
    recv_bytes = st.recv_bytes

    dma = st.dma
    dma_head = [0] * len(dma)
    dma_busy = [False] * len(dma)
    link_to = [neighbour[c][p] for c, p in link_from]
    link_src = [c for c, _ in link_from]
    link_back = [back_port[c][p] for c, p in link_from]
    link_ready: list[list] = [[] for _ in link_from]
    link_busy = [False] * len(link_from)
    comp_ready: list[list] = [[] for _ in range(n)]
    comp_busy = [False] * n

    dram_lat, link_lat = cost.dram_latency_ns, cost.link_latency_ns
    head_ns = cost.link_busy_ns(PACKET_BYTES)
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
    dirty_link: set[int] = set()
    dirty_comp: set[int] = set()
    dirty_dma: set[int] = set(range(len(dma)))
    # engines whose head waits for a free buffer on a chiplet: a release there is what can start
    # them (any other engine into that chiplet is busy, idle or waits for something else)
    link_wait: list[set[int]] = [set() for _ in range(n)]
    dma_wait: list[set[int]] = [set() for _ in range(n)]
    push, pop = heapq.heappush, heapq.heappop
    macs = ffn_bytes = dram_bytes = 0
    moved = 0  # sends and FFNs started (with the loads: the step's element-ops)

    def err(role: str, c: int, pos: int, message: str, *port: int) -> ProgramError:
        return _located(st, (role, c, experts[pos], *port), message)

    def arrive(v: list) -> None:
        """The shard reaches v's chiplet: all of it, or (cut-through, v[TAIL] set) its first
        packet; the rest arrives with `tail`."""
        c, pos = v[CHIPLET], v[POS]
        computing = v[COMPUTING]
        if not computing and c == v[ENTRY]:
            computing = v[COMPUTING] = True
        uses = 0
        if computing and mem[pos] >> c & 1:
            left = ffn_left[c][pos]
            if left <= 0:
                raise err("ffns", c, pos, f"shard e{v[EXPERT]} j{v[SHARD]} reaches S_e past its entry, but no FFN "
                                          f"is left for it (ffns of expert {v[EXPERT]} here: "
                                          f"{'used up' if ffn_tokens[c][pos] else 'none'})")
            ffn_left[c][pos] = left - 1
            v[HERE] = True
            if not v[TAIL]:
                tail(v)
            uses = 1
        if not (computing and c == v[END]):
            way = 2 * pos + (v[DIR] & 1)
            k = send_link[c][way]
            if k < 0:
                raise err("sends", c, pos, f"shard e{v[EXPERT]} j{v[SHARD]} goes on past chiplet {c} but the program "
                                           f"sends no shard of expert {v[EXPERT]} from here")
            left = send_left[c][way]
            if left <= 0:
                raise err("sends", c, pos, f"shard e{v[EXPERT]} j{v[SHARD]} goes on, but the sends of expert "
                                           f"{v[EXPERT]} are used up")
            send_left[c][way] = left - 1
            push(link_ready[k], (now, pos, v[SHARD], v[HOP], v))
            dirty_link.add(k)
            uses += 1
        v[USES] = uses
        if uses == 0:
            release(v)

    def tail(v: list) -> None:
        """All of the shard is at v's chiplet: its FFN there (if any) may run."""
        if v[HERE]:
            c = v[CHIPLET]
            push(comp_ready[c], (now, v[POS], v[SHARD], v[HOP], v))
            dirty_comp.add(c)

    def release(v: list) -> None:
        c, pos = v[CHIPLET], v[POS]
        left = free_left[c][pos]
        if left <= 0:
            raise err("frees", c, pos, f"shard e{v[EXPERT]} j{v[SHARD]} is done here but no FREE is left for "
                                       f"expert {v[EXPERT]}")
        free_left[c][pos] = left - 1
        d = v[DIR]
        cnt = count[c]
        before = 1 if bubble[d] == c or (escape and cnt[d] == 0) else 0
        free[c] += 1
        cnt[d] -= 1
        if moving[d] is v:
            moving[d] = None
            bubble[d] = c
        holds[c] += (1 if bubble[d] == c or (escape and cnt[d] == 0) else 0) - before
        used[c] -= 1
        held[c] -= v[NBYTES]
        if dma_wait[c]:
            dirty_dma.update(dma_wait[c])
            dma_wait[c].clear()
        if link_wait[c]:
            dirty_link.update(link_wait[c])
            link_wait[c].clear()

    def start_dma(k: int) -> None:
        nonlocal seq, dram_bytes
        c, ch, loads = dma[k]
        head = dma_head[k]
        if head >= len(loads):
            return
        load = loads[head]
        d = load[6]
        if free[c] - holds[c] < need:
            dma_wait[c].add(k)
            return
        nbytes = load[3]
        dma_head[k] = head + 1
        cnt = count[c]
        before = 1 if bubble[d] == c or (escape and cnt[d] == 0) else 0
        free[c] -= 1
        cnt[d] += 1
        holds[c] += (1 if bubble[d] == c or (escape and cnt[d] == 0) else 0) - before
        used[c] += 1
        h = held[c] + nbytes
        held[c] = h
        if h > peak_bytes[c]:
            peak_bytes[c] = h
        length = dram_cache.get(nbytes)
        if length is None:
            length = dram_cache[nbytes] = dram_ns(nbytes)
        dma_busy[k] = True
        busy_dma[k] += length
        dram_bytes += nbytes
        if keep_ops:
            ops.append(("load", c, ch, load[1], load[2], now, now + length))
        push(events, (now + length, seq, _DMA_FREE, k, None))
        push(events, (now + length + dram_lat, seq + 1, _ARRIVE, [*load, False, c, 0, 0, False, False], None))
        seq += 2

    def start_link(k: int) -> None:
        nonlocal seq, moved
        ready = link_ready[k]
        v = ready[0][4]
        nxt = link_to[k]
        d = v[DIR]
        cnt = count[nxt]
        before = 1 if bubble[d] == nxt or (escape and cnt[d] == 0) else 0
        room = free[nxt] - holds[nxt] + before
        if room < 1:
            link_wait[nxt].add(k)
            return
        pos = v[POS]
        back = link_back[k]
        posted = recv_left[nxt][back]
        if posted[pos] <= 0:
            return  # no receive posted: the neighbour never asked for it (a deadlock if it stays so)
        pop(ready)
        posted[pos] -= 1
        c = link_src[k]
        nbytes = v[NBYTES]
        moves = send_bytes[c][2 * pos + (d & 1)]
        if moves != nbytes:
            raise err("sends", c, pos, f"sends of expert {v[EXPERT]} move {moves} bytes per shard, its shards are "
                                       f"{nbytes} bytes")
        if recv_bytes[nxt][back][pos] != nbytes:
            raise err("recvs", nxt, pos, f"recvs of expert {v[EXPERT]} expect {recv_bytes[nxt][back][pos]} bytes per "
                                         f"shard, its shards are {nbytes} bytes", back)
        free[nxt] -= 1
        cnt[d] += 1
        if room == 1 and bubble[d] == nxt:  # took the critical bubble: it moves to the buffer left
            bubble[d] = -1
            moving[d] = v
        holds[nxt] += (1 if bubble[d] == nxt or (escape and cnt[d] == 0) else 0) - before
        used[nxt] += 1
        h = held[nxt] + nbytes
        held[nxt] = h
        if h > peak_bytes[nxt]:
            peak_bytes[nxt] = h
        moved += 1
        length = link_cache.get(nbytes)
        if length is None:
            length = link_cache[nbytes] = link_ns(nbytes)
        link_busy[k] = True
        busy_link[k] += length
        bytes_link[k] += nbytes
        if keep_ops:
            ops.append(("send", c, nxt, v[EXPERT], v[SHARD], now, now + length))
        computing = v[COMPUTING] or nxt == v[ENTRY]
        # it goes on from nxt unless its trajectory ends there: then cut-through (R7) applies
        ahead = not (computing and nxt == v[END]) and nbytes > PACKET_BYTES
        w = [pos, v[EXPERT], v[SHARD], nbytes, v[ENTRY], v[END], d, v[COMPUTING], nxt, v[HOP] + 1, 0, False, ahead]
        push(events, (now + length, seq, _SENT, k, v))
        if ahead:
            push(events, (now + head_ns + link_lat, seq + 1, _HEAD, w, None))
            push(events, (now + length + link_lat, seq + 2, _ARRIVE, w, None))
            seq += 3
        else:
            push(events, (now + length + link_lat, seq + 1, _ARRIVE, w, None))
            seq += 2

    def start_compute(c: int) -> None:
        nonlocal seq, macs, ffn_bytes, moved
        v = pop(comp_ready[c])[4]
        pos = v[POS]
        tokens = ffn_tokens[c][pos]
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
            ops.append(("ffn", c, 0, v[EXPERT], v[SHARD], now, now + length))
        if data is not None:
            data.stream_ffn(c, v[EXPERT], v[SHARD], tokens)
        push(events, (now + length, seq, _COMPUTED, c, v))
        seq += 1

    def kick() -> None:
        """Start what the engines an instant's events touched can start (links, compute, DMA)."""
        if dirty_link:
            for k in sorted(dirty_link) if len(dirty_link) > 1 else dirty_link:
                if not link_busy[k] and link_ready[k]:
                    start_link(k)
            dirty_link.clear()
        if dirty_comp:
            for c in sorted(dirty_comp) if len(dirty_comp) > 1 else dirty_comp:
                if not comp_busy[c] and comp_ready[c]:
                    start_compute(c)
            dirty_comp.clear()
        if dirty_dma:
            for k in sorted(dirty_dma) if len(dirty_dma) > 1 else dirty_dma:
                if not dma_busy[k]:
                    start_dma(k)
            dirty_dma.clear()

    kick()
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, _, kind, a, b = pop(events)
            if kind == _ARRIVE:
                if a[TAIL]:
                    tail(a)
                else:
                    arrive(a)
            elif kind == _HEAD:
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
        raise DeadlockError(_deadlock_report(st, experts, dma, dma_head, free, holds, link_from, link_ready,
                                             comp_ready, recv_left, used))
    left = {"ffns": ffn_left, "sends": send_left, "frees": free_left}
    for role, table in left.items():
        for c, row in enumerate(table):
            for index, k in enumerate(row):
                pos = index // 2 if role == "sends" else index
                if k:
                    raise _located(st, (role, c, experts[pos]), f"{k} of the {role} of expert {experts[pos]} on "
                                                                f"chiplet {c} were never needed")
    for c, ports in enumerate(recv_left):
        for p, row in enumerate(ports):
            for pos, k in enumerate(row):
                if k:
                    raise _located(st, ("recvs", c, experts[pos], p), f"{k} receives of expert {experts[pos]} on "
                                                                      f"chiplet {c} port {p} were never matched by a send")
    run.makespan = now
    run.events = sum(dma_head) + moved
    run.peak_bytes = peak_bytes
    run.macs, run.ffn_bytes, run.dram_bytes = macs, ffn_bytes, dram_bytes
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
    # the range's own record, else (dynamic) the template's instruction for the role, else the
    # stream's table row (static) or the chiplet's STREAMS (dynamic)
    where = (st.where.get(key) or st.where.get(key[:2]) or st.where.get(("stream", key[1], key[2]))
             or st.where.get(("stream", key[1])))
    text = f"layer {st.layer} step {st.step}: {message}"
    if where is not None and st.error is not None:
        return st.error(*where, text)  # type: ignore[operator]
    return ProgramError(f"chiplet {key[1]}, {text}")


def _deadlock_report(st, experts, dma, dma_head, free, holds, link_from, link_ready, comp_ready, recv_left,
                     used) -> str:
    names = ("cw", "ccw")
    lines = [f"deadlock in layer {st.layer} step {st.step}: no engine can start while work remains"]
    for k, (c, ch, loads) in enumerate(dma):
        if dma_head[k] < len(loads):
            _, e, j, _, _, _, d = loads[dma_head[k]]
            way = names[d & 1] + (f" ring {d // 2}" if d > 1 else "")
            lines.append(f"  chiplet {c} dma{ch}: load e{e} j{j} ({way}) waits for a free buffer "
                         f"(has {free[c]}, {holds[c]} held for forwards)")
    for k, (c, p) in enumerate(link_from):
        if link_ready[k]:
            v = link_ready[k][0][4]
            nxt = st.neighbour[c][p]
            back = st.back_port[c][p]
            if recv_left[nxt][back][v[POS]] <= 0:
                why = f"a receive posted by chiplet {nxt} for expert {v[EXPERT]} (its recvs on port {back})"
            else:
                why = f"a buffer at chiplet {nxt} (has {free[nxt]} free, {holds[nxt]} held for forwards)"
            lines.append(f"  chiplet {c} link to {nxt}: send e{v[EXPERT]} j{v[SHARD]} waits for {why}; "
                         f"{len(link_ready[k])} shard(s) queued")
    for c, ready in enumerate(comp_ready):
        if ready:
            lines.append(f"  chiplet {c} compute: {len(ready)} FFN(s) ready but not run")
    for c, u in enumerate(used):
        if u:
            lines.append(f"  chiplet {c}: {u} shard buffer(s) held")
    return "\n".join(lines)
