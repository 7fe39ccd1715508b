"""From instruction streams to engine work: phases between barriers, decoded and checked.

Every chiplet's program is cut at its SYNC records into *phases*; the k-th phase of every
chiplet runs at the same time and ends at the barrier, whose (layer, step) tag must agree on
all chiplets. A phase is one of: dense (DENSE only), a static stream step (a STREAM table and
range instructions), a dynamic stream step (STREAMS + FOREACH template) or a task step (ids
and WAITs). Decoding checks what can be checked before time starts: the canonical order of a
static step (a TABLE record naming the step's stream table, which the program directory stores
once for all chiplets in `streams.bin`, then per stream in table order its loads, receives,
sends, FFN and frees: R6 on every engine), R1 (sends go to the next chiplet of the stream's
direction on the virtual ring, receives come from the previous one), loads against the DRAM
image and FFN token counts against the routing (task steps: `task_decode.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fsedp_compiler.isa import ACC, ANY_ADDR, ANY_UNIT, DENSE, FFN, FFNS, FREE, FREES, CURRENT, HALT, JOIN, LOAD, LOADS, MASK, NOP, OPS, RECV, RECVS, REDUCE, SEND, SENDS, STREAM, STREAMS, SYNC, TABLE, TOKRECV, TOKSEND, WAIT

from fsedp_compiler.sim.errors import ProgramError
from fsedp_compiler.sim.loader import LayerDesc, Loaded
from fsedp_compiler.sim.stream_engine import StreamStep
from fsedp_compiler.sim.trajectory import Trajectories

STREAM_OPS = frozenset({TABLE, STREAM, MASK, LOADS, RECVS, SENDS, FFNS, FREES})
TASK_OPS = frozenset({LOAD, SEND, RECV, TOKSEND, TOKRECV, REDUCE, FFN, ACC, FREE, WAIT, JOIN})


def tag_text(layer: int, step: int) -> str:
    """`l=… s=…` of a record as its text form writes them (`*` for CURRENT)."""
    return " ".join(f"{k}={'*' if v == CURRENT else v}" for k, v in (("l", layer), ("s", step)))
_ROLE = {LOADS: 0, RECVS: 1, SENDS: 2, FFNS: 3, FREES: 4}
# record columns
OP, UNIT, X, LAYER, STEP, EXPERT, SHARD, Y, Z, N, ARG, WIDE = range(12)


@dataclass
class Phase:
    """The k-th phase of every chiplet: record index ranges [start, end) (the SYNC included)."""

    kind: str
    """dense, stream, dynamic, task or barrier"""
    layer: int
    step: int
    """the barrier's step (CURRENT in a dynamic program)"""
    bounds: list[tuple[int, int]]


def split_phases(loaded: Loaded) -> list[Phase]:
    """Cut every program at its SYNCs; the phases must agree in number, tags and kind."""
    programs = loaded.programs
    cuts = []
    for p in programs:
        op = p.instrs["opcode"]
        syncs = np.flatnonzero(op == SYNC)
        rest = op[syncs[-1] + 1:] if len(syncs) else op
        tail = np.flatnonzero(rest != NOP)
        last = int(syncs[-1]) + 1 if len(syncs) else 0
        if len(tail) != 1 or rest[tail[0]] != HALT:
            at = last + int(tail[0]) if len(tail) and rest[tail[0]] != HALT else len(op)
            raise _error(loaded, p.chiplet, min(at, len(op) - 1) if len(op) else 0,
                         "after the last SYNC a program must end with HALT" if len(op) else "empty program")
        cuts.append(syncs.tolist())
    count = len(cuts[0])
    for c, s in enumerate(cuts):
        if len(s) != count:
            raise _error(loaded, c, s[min(len(s), count) - 1] if s else 0,
                         f"{len(s)} SYNC barriers, chiplet 0 has {count}: every chiplet must reach the same barriers")
    phases = []
    for k in range(count):
        bounds = [((cuts[c][k - 1] + 1) if k else 0, cuts[c][k] + 1) for c in range(len(programs))]
        tags = [(int(programs[c].instrs["layer"][b - 1]), int(programs[c].instrs["step"][b - 1]))
                for c, (_, b) in enumerate(bounds)]
        for c, tag in enumerate(tags):
            if tag != tags[0]:
                raise _error(loaded, c, bounds[c][1] - 1, f"barrier tag l={tag[0]} s={tag[1]} differs from "
                                                          f"chiplet 0's l={tags[0][0]} s={tags[0][1]}")
        kinds = {_kind(programs[c].instrs["opcode"][a:b - 1]) for c, (a, b) in enumerate(bounds)} - {"barrier"}
        if len(kinds) > 1:
            raise _error(loaded, 0, bounds[0][0], f"the chiplets disagree on what phase {k} is ({sorted(kinds)})")
        if "mixed" in kinds:
            c = next(c for c, (a, b) in enumerate(bounds) if _kind(programs[c].instrs["opcode"][a:b - 1]) == "mixed")
            raise _error(loaded, c, bounds[c][0], "a phase mixes instructions of different kinds (dense, stream "
                                                  "table, template, tasks); put a SYNC between them")
        kind = kinds.pop() if kinds else "barrier"
        phases.append(Phase(kind, tags[0][0], tags[0][1], bounds))
    return phases


def _kind(ops: np.ndarray) -> str:
    # the opcodes present (bincount: np.unique would import numpy.ma on its first call)
    present = set((np.flatnonzero(np.bincount(ops)) if ops.dtype.kind == "u" else np.unique(ops)).tolist()) - {NOP}
    if not present:
        return "barrier"
    if present <= {DENSE}:
        return "dense"
    if present <= STREAM_OPS:
        return "stream"
    if STREAMS in present:
        return "dynamic"
    if present <= TASK_OPS:
        return "task"
    return "mixed"


def _error(loaded: Loaded, chiplet: int, index: int, message: str) -> ProgramError:
    return loaded.error(chiplet, index, message)  # type: ignore[return-value]


def records(loaded: Loaded, c: int, bounds: tuple[int, int]) -> list[tuple]:
    a, b = bounds
    return loaded.programs[c].instrs[a:b - 1].tolist()


# --------------------------------------------------------------------------- routing per step


@dataclass
class Routing:
    """One layer step's routing as the machine sees it: each chiplet's local token group per expert."""

    experts: np.ndarray
    weights: np.ndarray
    token_chiplet: np.ndarray
    groups: list[dict[int, np.ndarray]]
    """chiplet -> expert -> its tokens routed to the expert, by token id (shared experts: all local)"""

    @staticmethod
    def of(experts: np.ndarray, weights: np.ndarray, token_chiplet: np.ndarray, layer: LayerDesc,
           n: int) -> Routing:
        groups: list[dict[int, np.ndarray]] = [{} for _ in range(n)]
        spec = layer.spec
        k = experts.shape[1]
        flat_e = experts.reshape(-1)
        flat_t = np.repeat(np.arange(len(experts)), k)
        flat_c = token_chiplet[flat_t]
        order = np.lexsort((flat_t, flat_e, flat_c))
        width = spec.num_experts + spec.num_shared + 1
        keys = flat_c[order] * width + flat_e[order]
        if len(keys) and (flat_e.min() < 0 or flat_e.max() >= width or flat_c.min() < 0):
            bounds = np.flatnonzero(np.diff(keys)) + 1
            for part in np.split(order, bounds):  # (expert ids the trace check refuses)
                if len(part):
                    c, e = int(flat_c[part[0]]), int(flat_e[part[0]])
                    groups[c][e] = np.unique(flat_t[part])
        elif len(keys):
            # one key per (chiplet, expert), tokens ascending within it: each group's tokens with
            # repeats dropped (np.unique of the group), cut out of one array
            tokens = flat_t[order]
            keep = np.ones(len(keys), dtype=bool)
            keep[1:] = (keys[1:] != keys[:-1]) | (tokens[1:] != tokens[:-1])
            keys, tokens = keys[keep], tokens[keep]
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            firsts = order[keep][starts]
            ends = [*starts[1:].tolist(), len(keys)]
            for a, b, c, e in zip(starts.tolist(), ends, flat_c[firsts].tolist(), flat_e[firsts].tolist()):
                groups[c][e] = tokens[a:b]
        for s in range(spec.num_shared):
            for c in range(n):
                local = np.flatnonzero(token_chiplet == c)
                if len(local):
                    groups[c][spec.num_experts + s] = local
        return Routing(experts, weights, token_chiplet, groups)

    def size(self, c: int, e: int) -> int:
        g = self.groups[c].get(e)
        return 0 if g is None else len(g)


# --------------------------------------------------------------------------- static stream steps


def _ports(loaded: Loaded) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    neighbour = [p.ports for p in loaded.programs]
    back = [tuple(neighbour[nb].index(c) for nb in neighbour[c]) for c in range(len(neighbour))]
    return neighbour, back


class _Ring:
    """The virtual ring of the target (R1): next chiplet in each direction."""

    def __init__(self, order: tuple[int, ...]) -> None:
        n = len(order)
        self.order = order
        self.pos = {c: i for i, c in enumerate(order)}
        self.next = [[0, 0] for _ in range(n)]
        for i, c in enumerate(order):
            self.next[c][0] = order[(i + 1) % n]  # cw
            self.next[c][1] = order[(i - 1) % n]  # ccw


def empty_stream_step(loaded: Loaded, layer: LayerDesc, l: int, s: int,
                      table: list[tuple[int, ...]]) -> StreamStep:
    """A step with the given stream table (expert, S_e, direction code, ring) and no work yet."""
    n = loaded.target.num_chiplets
    neighbour, back = _ports(loaded)
    k = len(table)

    def zeros() -> list[list[int]]:
        return [[0] * k for _ in range(n)]

    return StreamStep(
        layer=l, step=s, num_chiplets=n, buffers=layer.plan.buffers,
        bubble_home=next((c for c in range(n - 1, -1, -1) if c not in loaded.target.dram_at), 0),
        dtype_bytes=layer.spec.dtype_bytes,
        experts=[t[0] for t in table], members=[t[1] for t in table], dirs=set(), dma=[],
        neighbour=neighbour, back_port=back, send_port=[[-1] * (2 * k) for _ in range(n)],
        send_left=[[0] * (2 * k) for _ in range(n)], send_bytes=[[0] * (2 * k) for _ in range(n)], recv_left=[[[0] * k for _ in neighbour[c]] for c in range(n)],
        recv_bytes=[[[0] * k for _ in neighbour[c]] for c in range(n)], ffn_left=zeros(), ffn_tokens=zeros(),
        free_left=zeros())


def decode_stream(loaded: Loaded, phase: Phase, routing: Routing) -> StreamStep:
    """A static FSE-DP step: checked (module docstring) and turned into engine work."""
    l, s = phase.layer, phase.step
    layer = loaded.layers.get(l)
    if layer is None or layer.policy is None:
        raise _error(loaded, 0, phase.bounds[0][0], f"stream instructions for layer {l}, which is not an FSE-DP "
                                                    "MoE layer of this program")
    n = loaded.target.num_chiplets
    rings = [_Ring(r) for r in loaded.rings]
    allowed = len(rings) if layer.policy.rings == "all" else 1
    lay = layer.layout
    m = layer.plan.num_shards
    dma: dict[tuple[int, int], list[tuple]] = {}
    trajs = [Trajectories(r) for r in loaded.rings]
    short_ways: dict[tuple[int, int, int], list[int]] = {}
    table = _shared_table(loaded, layer, l, s, allowed, phase, routing)
    st = empty_stream_step(loaded, layer, l, s, table)
    for c in range(n):
        a = phase.bounds[c][0]
        recs = records(loaded, c, phase.bounds[c])

        def fail(i: int, message: str, c: int = c, a: int = a) -> ProgramError:
            return _error(loaded, c, a + i, message)

        i = 0
        while i < len(recs) and recs[i][OP] == NOP:
            i += 1
        r = recs[i] if i < len(recs) else None
        if r is None or r[OP] != TABLE:
            if r is not None and r[OP] in (STREAM, MASK):
                raise fail(i, "stream rows live in the program's shared stream-table file (streams.bin), not in a "
                              "chiplet's program; a static step opens with `table l= s= n=`")
            raise fail(min(i, max(len(recs) - 1, 0)), f"a static step opens with `table l={l} s={s} n=...`")
        if (r[LAYER], r[STEP]) != (l, s):
            raise fail(i, f"table tagged {tag_text(r[LAYER], r[STEP])} in the phase of l={l} s={s}")
        if r[N] != len(table):
            raise fail(i, f"table of {r[N]} streams, but the program's stream table of l={l} s={s} holds {len(table)}")
        for e, *_ in table:
            st.where[("stream", c, e)] = (c, a + i)
        i += 1
        pos = {t[0]: k for k, t in enumerate(table)}
        last = (-1, -1, -1)
        for i in range(i, len(recs)):
            r = recs[i]
            op = r[OP]
            if op == NOP:
                continue
            mnemonic = OPS[op].mnemonic
            if op in (STREAM, MASK, TABLE):
                raise fail(i, "a static step opens with its one table record; stream rows live in the program's "
                              "shared stream-table file (streams.bin)")
            if (r[LAYER], r[STEP]) != (l, s):
                raise fail(i, f"{mnemonic} tagged {tag_text(r[LAYER], r[STEP])} in the phase of l={l} s={s}")
            e = r[EXPERT]
            if e not in pos:
                raise fail(i, f"{mnemonic} of expert {e}, which has no row in this step's stream table")
            key = (pos[e], _ROLE[op], r[UNIT] if op in (LOADS, RECVS, SENDS) else 0)
            if key <= last:
                raise fail(i, f"{mnemonic} out of order: a step lists each stream's ranges in stream-table order "
                              "(R6), loads by channel, then receives and sends by port, then ffns and frees")
            last = key
            d, rid = table[pos[e]][2], table[pos[e]][3]
            ring = rings[rid]
            k = pos[e]
            where = (c, a + i)
            if op == LOADS:
                if d >= 2:  # SHORT: the machine's own rule decides which way this home's shards go
                    members = table[pos[e]][1]
                    if (e, members, rid) not in short_ways:
                        short_ways[(e, members, rid)] = trajs[rid].ways(members, layer.policy.trajectory, d - 2)
                    d = short_ways[(e, members, rid)][c]
                _loads(loaded, layer, st, r, c, 2 * rid + d, pos[e], fail, i, dma, m, lay)  # its virtual network
                st.where[("loads", c, e, r[UNIT])] = where
            elif op in (RECVS, SENDS):
                port = r[UNIT]
                if port == ANY_UNIT:
                    raise fail(i, f"{mnemonic} port=* in a static program")
                nbr = st.neighbour[c][port]
                # the direction bits the stream's shards may walk; a SHORT stream's go either way
                ways = (0, 1) if d >= 2 else (d,)
                wants = [ring.next[c][1 - w] if op == RECVS else ring.next[c][w] for w in ways]
                if nbr not in wants:
                    way = ("arrive from" if op == RECVS else "go on to")
                    name = ("cw", "ccw", "the shorter way", "the shorter way")[d]
                    raise fail(i, f"R1: shards of expert {e} stream {name} on the virtual ring and {way} chiplet "
                                  f"{' or '.join(map(str, sorted(set(wants))))}, but port {port} leads to chiplet {nbr}")
                if op == RECVS:
                    st.recv_left[c][port][k] = r[N]
                    st.recv_bytes[c][port][k] = r[ARG]
                    st.where[("recvs", c, e, port)] = where
                else:
                    w = ways[wants.index(nbr)]
                    if st.send_port[c][2 * k + w] >= 0:
                        raise fail(i, f"a second sends of expert {e} {('cw', 'ccw')[w]}: a stream leaves a chiplet "
                                      "by one port each way")
                    st.send_port[c][2 * k + w], st.send_left[c][2 * k + w] = port, r[N]
                    st.send_bytes[c][2 * k + w] = r[ARG]
                    st.where.setdefault(("sends", c, e), where)
            elif op == FFNS:
                have = routing.size(c, e)
                if r[ARG] != have:
                    raise fail(i, f"ffns on tokens={r[ARG]}, but chiplet {c} holds {have} token(s) routed to expert {e}")
                st.ffn_left[c][k], st.ffn_tokens[c][k] = r[N], r[ARG]
                st.where[("ffns", c, e)] = where
            else:
                st.free_left[c][k] = r[N]
                st.where[("frees", c, e)] = where
    st.dma = [(c, ch, loads) for (c, ch), loads in sorted(dma.items())]
    st.dirs = {load[6] for _, _, loads in st.dma for load in loads}  # the virtual networks in use (R4)
    st.error = loaded.error
    return st


def _shared_table(loaded: Loaded, layer: LayerDesc, l: int, s: int, allowed: int, phase: Phase,
                  routing: Routing) -> list[tuple[int, int, int, int]]:
    """The step's stream table from the program's stream-table file, checked: (expert, S_e,
    direction code, ring) per row in the global order (R6); S_e must be the chiplets holding
    tokens routed to the expert (R2)."""
    if loaded.tables is None:
        raise _error(loaded, 0, phase.bounds[0][0], "a static step names its stream table, but program.json lists "
                                                    "no stream-table file (streams.bin)")
    n = loaded.target.num_chiplets
    lo, recs = loaded.tables.records(l, s)
    rows = recs.tolist()
    table: list[tuple[int, int, int, int]] = []
    seen: set[int] = set()
    for i, r in enumerate(rows):
        if r[OP] != STREAM:
            continue
        members = r[WIDE]
        for w in range(1, r[N] + 1):
            members |= rows[i + w][WIDE] << (64 * w)
        if members == 0 or members >> n:
            raise loaded.table_error(lo + i, f"S_e must be a non-empty set of chiplets 0..{n - 1}")
        if r[EXPERT] >= layer.plan.num_streams:
            raise loaded.table_error(lo + i, f"expert {r[EXPERT]} does not exist in layer {l}")
        if r[EXPERT] in seen:
            raise loaded.table_error(lo + i, f"expert {r[EXPERT]} has two rows in the stream table")
        if r[UNIT] >= allowed:
            raise loaded.table_error(lo + i, f"R1: ring {r[UNIT]}, but this layer's streams follow "
                                             f"{'ring 0 only' if allowed == 1 else f'rings 0..{allowed - 1}'}")
        need = sum(1 << c for c in range(n) if routing.size(c, r[EXPERT]))
        if members != need:
            raise loaded.table_error(lo + i, f"S_e = {members:#x}, but the chiplets holding tokens routed to expert "
                                             f"{r[EXPERT]} are {need:#x}")
        seen.add(r[EXPERT])
        table.append((r[EXPERT], members, r[X], r[UNIT]))
    return table


def _loads(loaded: Loaded, layer: LayerDesc, st: StreamStep, r: tuple, c: int, d: int, pos: int,
           fail: Callable[[int, str], ProgramError], i: int, dma: dict, m: int, lay) -> None:
    """One LOADS range: its shards must be where the DRAM image says, at the addresses named."""
    e, ch, j0, stride, count, nbytes, addr = r[EXPERT], r[UNIT], r[SHARD], r[Y], r[N], r[ARG], r[WIDE]
    if ch == ANY_UNIT or addr == ANY_ADDR:
        raise fail(i, "loads with ch=* or addr=* in a static program")
    n = st.num_chiplets
    if r[Z] >= n or r[X] >= n:
        raise fail(i, f"entry and end must be chiplets 0..{n - 1}")
    if count == 0:
        raise fail(i, "loads of no shards")
    if (count > 1 and stride == 0) or int(j0) + int(stride) * (int(count) - 1) >= m:
        raise fail(i, f"shards {j0}, {j0}+{stride}, ... ({count} of them) run past the {m} shards of expert {e}")
    if int(addr) + int(nbytes) * int(count) >= 1 << 63:
        raise fail(i, f"addresses from {int(addr):#x} ({count} x {nbytes} bytes) run past the DRAM address space")
    rows = lay.rows[e] if 0 <= e < len(lay.rows) else None
    js: Any = None
    if rows is not None and j0 >= 0 and stride >= 0 and lay.rows_bytes[e] == nbytes:
        # the usual case, checked in plain Python (a mismatch is worded by the array check below)
        chiplets, channels, addrs = rows
        js = range(j0, j0 + stride * count, stride) if stride else (j0,)
        want = addr
        for j in js:
            if chiplets[j] != c or channels[j] != ch or addrs[j] != want:
                js = None
                break
            want += nbytes
    if js is None:
        js = _check_image(lay, e, j0, stride, count, nbytes, addr, c, ch, i, fail).tolist()
    queue = dma.setdefault((c, ch), [])
    if queue and queue[-1][0] > pos:
        raise fail(i, "loads on one channel must follow the stream table order (R6)")
    entry, end = r[Z], r[X]
    queue.extend((pos, e, j, nbytes, entry, end, d) for j in js)


def _check_image(lay, e: int, j0: int, stride: int, count: int, nbytes: int, addr: int, c: int, ch: int, i: int,
                 fail: Callable[[int, str], ProgramError]) -> np.ndarray:
    """The shards a LOADS range names, each where the DRAM image says (else a located error)."""
    js = j0 + stride * np.arange(count, dtype=np.int64)
    want_addr = addr + nbytes * np.arange(count, dtype=np.int64)
    bad = (lay.chiplet[e, js] != c) | (lay.channel[e, js] != ch) | (lay.addr[e, js] != want_addr)
    if bad.any() or int(lay.tile_bytes[e]) != nbytes:
        k = int(np.argmax(bad)) if bad.any() else 0
        j = int(js[k])
        raise fail(i, f"the DRAM image holds shard {j} of expert {e} ({int(lay.tile_bytes[e])} bytes) on chiplet "
                      f"{int(lay.chiplet[e, j])} channel {int(lay.channel[e, j])} at {int(lay.addr[e, j]):#x}, not "
                      f"on chiplet {c} channel {ch} at {int(want_addr[k]):#x} ({nbytes} bytes)")
    return js
