"""The runtime controller of dynamic programs: the stream table, trajectories and when/where.

Per layer step the controller runs the lightweight scheduler (`scheduler.schedule`, the one
compiler function the machine calls, as firmware would) on the step's routing, and charges its
modelled latency. Then every chiplet runs its FOREACH template once per visit of every shard of
the table, in table order then shard order: a shard's DRAM home comes from the program's DRAM
image, its trajectory from the virtual ring and the layer's trajectory rule (implemented here,
independently of the compiler: R1-R5), and each WHEN / WHERE is decided for that visit. The
template's leaf instructions become the same engine work a static step's ranges describe. (A
shard's trajectory depends only on its home chiplet, so the template is decided once per visit
of each home's shards and applied to all of them: the same result, O(homes x path) per stream.)
"""

from __future__ import annotations

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.isa import (
    ANY_ADDR,
    ANY_UNIT,
    CURRENT,
    FFN,
    FOREACH,
    FREE,
    LOAD,
    NOP,
    OPS,
    RECV,
    SEND,
    STREAMS,
    WHEN,
    WHEN_FORWARD,
    WHEN_HOME,
    WHEN_INBOUND,
    WHEN_LAST,
    WHEN_MEMBER,
    WHEN_VISIT,
    WHERE,
)
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import StepRouting, schedule

from fsedp_compiler.sim.errors import ProgramError
from fsedp_compiler.sim.loader import LayerDesc, Loaded
from fsedp_compiler.sim.steps import ARG, EXPERT, LAYER, N, OP, SHARD, STEP, UNIT, WIDE, X, Phase, Routing, _error, empty_stream_step, records
from fsedp_compiler.sim.stream_engine import StreamStep
from fsedp_compiler.sim.trajectory import Trajectories

_LEAVES = {LOAD, RECV, SEND, FFN, FREE}
#: the ISA's direction of a scheduled stream (cw, ccw, short)
_DIR_BIT = {1: 0, -1: 1, 0: 2, 2: 3}


def _template(loaded: Loaded, phase: Phase, c: int) -> tuple[list[tuple], int, int]:
    """The FOREACH body of chiplet c's dynamic step, checked; the index of its first record and
    of the STREAMS record."""
    a = phase.bounds[c][0]
    recs = records(loaded, c, phase.bounds[c])
    body = [(i, r) for i, r in enumerate(recs) if r[OP] != NOP]
    if len(body) < 2 or body[0][1][OP] != STREAMS or body[1][1][OP] != FOREACH:
        raise _error(loaded, c, a, "a dynamic layer step is STREAMS, FOREACH and its body, then SYNC")
    if body[0][1][LAYER] != phase.layer:
        raise _error(loaded, c, a + body[0][0], f"streams of layer {body[0][1][LAYER]} in layer {phase.layer}'s step")
    start = body[1][0] + 1
    rest = recs[start:]
    if body[1][1][N] != len(rest):
        raise _error(loaded, c, a + body[1][0], f"foreach n={body[1][1][N]}, but {len(rest)} records follow it "
                                               "before the SYNC")
    for i, r in enumerate(rest):
        op = r[OP]
        if op not in _LEAVES and op not in (WHEN, WHERE, NOP):
            raise _error(loaded, c, a + start + i, f"{OPS[op].mnemonic} inside a FOREACH body")
        if op == WHEN and i + r[N] >= len(rest) + 1:
            raise _error(loaded, c, a + start + i, "when covers records past the end of the FOREACH body")
        if op in _LEAVES:
            if r[LAYER] not in (phase.layer, CURRENT) or r[STEP] != CURRENT or r[EXPERT] != CURRENT \
                    or r[SHARD] != CURRENT:
                raise _error(loaded, c, a + start + i, "a template instruction names the current shard: "
                                                       "l= the layer, s=* e=* j=*")
    return rest, a + start, a + body[0][0]


def _actions(body: list[tuple], conds: dict[int, bool]) -> list[tuple[int, int, bool]]:
    """What the template does for one visit: (opcode, body index, WHERE set before it)."""
    out = []
    where = False
    i = 0
    while i < len(body):
        r = body[i]
        if r[OP] == WHEN and not conds[r[X]]:
            i += 1 + r[N]
            continue
        if r[OP] == WHERE:
            where = True
        elif r[OP] in _LEAVES:
            out.append((r[OP], i, where))
        i += 1
    return out


def _arc(diff: list[int], start: int, d: int, length: int, n: int, k: int) -> None:
    """Add k to the `length` ring positions after `start` in direction d (a cyclic interval)."""
    if length <= 0:
        return
    lo = (start + 1) % n if d > 0 else (start - length) % n
    hi = lo + length
    diff[lo] += k
    if hi <= n:
        diff[hi] -= k
    else:
        diff[n] -= k
        diff[0] += k
        diff[hi - n] -= k


class _Visits:
    """Applies a dynamic step's templates to classes of shard visits (the per-step context)."""

    def __init__(self, loaded: Loaded, templates: list, st: StreamStep, routing: Routing, l: int, step: int) -> None:
        self.loaded, self.templates, self.st, self.routing, self.l, self.step = loaded, templates, st, routing, l, step
        self.memo: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}
        self.dma: dict[tuple[int, int], list[tuple]] = {}
        n = loaded.target.num_chiplets
        port_of = [{nb: p for p, nb in enumerate(st.neighbour[c])} for c in range(n)]
        # [chiplet][virtual network 2 x ring + direction bit]: the port to the next chiplet on that
        # ring in that direction, and from the previous one
        self.next_port: list[list[int]] = [[] for _ in range(n)]
        for ring in loaded.rings:
            where = {c: i for i, c in enumerate(ring)}
            for c in range(n):
                self.next_port[c] += [port_of[c][ring[(where[c] + 1) % n]], port_of[c][ring[(where[c] - 1) % n]]]
        self.prev_port = [[row[v ^ 1] for v in range(len(row))] for row in self.next_port]

    def visit(self, c: int, bits: int, pos: int, e: int, k: int, js: list[int], entry: int, end: int, dirbit: int,
              nbytes: int, channels: list[int], addrs: list[int]) -> None:
        """`k` visits of one class (bits: 1 first chiplet, 2 computing at a member, 4 last) of
        stream `pos`'s shards to chiplet c: the template's decisions for that class, k times over.
        `dirbit`: the shards' virtual network (2 x ring + direction bit)."""
        st = self.st
        acts = self.memo.get((c, bits))
        if acts is None:
            conds = {WHEN_HOME: bool(bits & 1), WHEN_INBOUND: not bits & 1, WHEN_MEMBER: bool(bits & 2),
                     WHEN_FORWARD: not bits & 4, WHEN_LAST: bool(bits & 4), WHEN_VISIT: True}
            acts = self.memo[(c, bits)] = _actions(self.templates[c][0], conds)
        for op, i, where in acts:
            r = self.templates[c][0][i]

            def fail(message: str, j: int = js[0], i: int = i) -> ProgramError:
                return _fail(self.loaded, self.templates, c, i, self.l, self.step, e, j, message)

            if op == FFN:
                tokens = self.routing.size(c, e)
                if r[ARG] not in (0, tokens):
                    raise fail(f"ffn on tokens={r[ARG]}, but chiplet {c} holds {tokens} routed to expert {e}")
                st.ffn_left[c][pos] += k
                st.ffn_tokens[c][pos] = tokens
            elif op == FREE:
                st.free_left[c][pos] += k
            elif op == SEND:
                if not where or bits & 4:
                    raise fail("send port=* without a WHERE before it" if not where else
                               "where next: the shard's trajectory ends here")
                port = self.next_port[c][dirbit]
                way = 2 * pos + (dirbit & 1)
                if r[UNIT] not in (ANY_UNIT, port) or st.send_port[c][way] not in (-1, port):
                    raise fail(f"send on port {r[UNIT]}, but the next chiplet is behind port {port}"
                               if r[UNIT] not in (ANY_UNIT, port) else "shards of one stream leave a chiplet by two ports")
                st.send_port[c][way] = port
                st.send_left[c][way] += k
                st.send_bytes[c][way] = r[ARG] or nbytes
            elif op == RECV:
                if bits & 1:
                    raise fail("recv of a shard that starts here (it does not arrive over a link)")
                port = self.prev_port[c][dirbit]
                if r[UNIT] not in (ANY_UNIT, port):
                    raise fail(f"recv on port {r[UNIT]}, but the shard arrives on port {port}")
                st.recv_left[c][port][pos] += k
                st.recv_bytes[c][port][pos] = r[ARG] or nbytes
            else:  # LOAD
                if not bits & 1:
                    raise fail(f"load on chiplet {c}, but the shard lives in another chiplet's DRAM")
                for j in js:
                    ch, addr = channels[j], addrs[j]
                    if r[UNIT] not in (ANY_UNIT, ch) or r[WIDE] not in (ANY_ADDR, addr) or r[ARG] not in (0, nbytes):
                        raise fail(f"load names a channel, address or size the shard does not have "
                                   f"(it is {nbytes} bytes at {addr:#x} on channel {ch})", j)
                    queue = self.dma.get((c, ch))
                    if queue is None:
                        queue = self.dma[(c, ch)] = []
                    queue.append((pos, e, j, nbytes, entry, end, dirbit))


def _fail(loaded: Loaded, templates: list, c: int, i: int, l: int, step: int, e: int, j: int,
          message: str) -> ProgramError:
    return _error(loaded, c, templates[c][1] + i, f"layer {l} step {step}, shard e{e} j{j}: {message}")


def _visit_stream(visits: _Visits, traj: Trajectories, pos: int, e: int, members: int, d: int, network: int,
                  rule: str, group: dict[int, list[int]], by_home: dict[int, list[int]], nbytes: int,
                  channels: list[int], addrs: list[int]) -> None:
    """The visits of the shards of stream `pos` homed in `group`, all walking direction d of
    `traj`'s ring (virtual network `network`).

    Every WHEN and WHERE of a visit depends only on its class: (first chiplet of the trajectory,
    computing at a member, last chiplet). Visits are counted per chiplet and class: the home and
    the ends of each arc one by one, arc interiors with difference arrays over ring positions."""
    n, ring_pos, order = traj.n, traj.pos, traj.order
    ahead, behind = traj.first_members(members, d), traj.first_members(members, -d)
    counts: dict[tuple[int, int], int] = {}
    passing = [0] * (n + 1)  # arc 1 interiors: class 0
    computing = [0] * (n + 1)  # arc 2 interiors: class member
    for home, js in group.items():
        k = len(js)
        entry, end, a1, a2 = traj.ends(home, members, d, rule, ahead, behind)
        at_entry = a1 == 0
        visits.visit(home, 1 | (2 if at_entry else 0) | (4 if at_entry and a2 == 0 else 0), pos, e, k, js,
                     entry, end, network, nbytes, channels, addrs)
        if not at_entry:
            _arc(passing, ring_pos[home], d, a1 - 1, n, k)
            key = (entry, 2 | (4 if a2 == 0 else 0))
            counts[key] = counts.get(key, 0) + k
        if a2 > 0:
            _arc(computing, ring_pos[entry], d, a2 - 1, n, k)
            key = (end, (2 if members >> end & 1 else 0) | 4)
            counts[key] = counts.get(key, 0) + k
    run_a = run_b = 0
    for p in range(n):
        run_a += passing[p]
        run_b += computing[p]
        c = order[p]
        if run_a:
            counts[(c, 0)] = counts.get((c, 0), 0) + run_a
        if run_b:
            key = (c, 2 if members >> c & 1 else 0)
            counts[key] = counts.get(key, 0) + run_b
    for (c, bits), k in counts.items():
        visits.visit(c, bits, pos, e, k, by_home.get(c, [0]), -1, -1, network, nbytes, channels, addrs)


def decode_dynamic(loaded: Loaded, phase: Phase, routing: Routing, step: int,
                   trajs: list[Trajectories]) -> tuple[StreamStep, int]:
    """A dynamic layer step: the controller's table, each template run per shard visit; returns
    the engine work and the controller's latency (ns)."""
    l = phase.layer
    layer: LayerDesc | None = loaded.layers.get(l)
    if layer is None or layer.policy is None:
        raise _error(loaded, 0, phase.bounds[0][0], f"a template for layer {l}, which is not an FSE-DP MoE layer")
    n = loaded.target.num_chiplets
    cost = CostModel(loaded.target, layer.spec.dtype)
    sched = schedule(StepRouting(routing.experts, routing.weights, routing.token_chiplet, l, step), layer.plan,
                     [Ring(r) for r in loaded.rings], cost, layer.policy)
    templates = [_template(loaded, phase, c) for c in range(n)]
    table = [(s.expert, s.members, _DIR_BIT[s.direction], s.ring) for s in sched.streams]
    st = empty_stream_step(loaded, layer, l, step, table)
    st.error = loaded.error
    lay = layer.layout
    rule = layer.policy.trajectory
    visits = _Visits(loaded, templates, st, routing, l, step)
    dma = visits.dma
    m = layer.plan.num_shards
    for pos, stream in enumerate(sched.streams):
        e, members = stream.expert, stream.members
        nbytes = int(lay.tile_bytes[e])
        homes = lay.chiplet[e].tolist()
        channels, addrs = lay.channel[e].tolist(), lay.addr[e].tolist()
        by_home: dict[int, list[int]] = {}
        for j in range(m):
            by_home.setdefault(homes[j], []).append(j)
        bit, ring = _DIR_BIT[stream.direction], trajs[stream.ring]
        ways = ring.ways(members, rule, bit - 2) if bit >= 2 else None  # SHORT: each home's way, own rule
        for dirbit in (0, 1):
            group = {h: js for h, js in by_home.items() if (ways[h] if ways is not None else bit) == dirbit}
            if group:
                _visit_stream(visits, ring, pos, e, members, 1 if dirbit == 0 else -1, 2 * stream.ring + dirbit, rule,
                              group, by_home, nbytes, channels, addrs)
    for queue in dma.values():
        queue.sort(key=lambda load: (load[0], load[2]))  # table order, then shard order (R6)
    for c in range(n):  # errors about a role are reported at the template's instruction for it
        body, first, streams_at = templates[c]
        st.where[("stream", c)] = (c, streams_at)
        for i, r in enumerate(body):
            role = {FFN: "ffns", FREE: "frees", SEND: "sends", RECV: "recvs", LOAD: "loads"}.get(r[OP])
            if role is not None:
                st.where.setdefault((role, c), (c, first + i))
    st.dma = [(c, ch, loads) for (c, ch), loads in sorted(dma.items())]
    st.dirs = {load[6] for _, _, loads in st.dma for load in loads}  # the virtual networks in use (R4)
    return st, cost.scheduler_ns(len(sched.streams))
