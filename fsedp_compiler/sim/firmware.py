"""The runtime controller of dynamic programs: the stream table, trajectories and when/where.

Per layer step the controller runs the lightweight scheduler (`scheduler.schedule`, the one
compiler function the machine calls, as firmware would) on the step's routing, and charges its
modelled latency. Then every chiplet runs its FOREACH template once per visit of every shard of
the table, in table order then shard order: a shard's DRAM home comes from the program's DRAM
image, its trajectory from the virtual ring and the layer's trajectory rule (implemented here,
independently of the compiler: R1-R5), and each WHEN / WHERE is decided for that visit. The
template's leaf instructions become the same engine work a static step's ranges describe.
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
from fsedp_compiler.ring import Ring
from fsedp_compiler.scheduler import StepRouting, schedule

from .errors import ProgramError
from .loader import LayerDesc, Loaded
from .stream_engine import StreamStep
from .steps import ARG, EXPERT, LAYER, N, OP, SHARD, STEP, UNIT, WIDE, X, Phase, Routing, _error, empty_stream_step, records

_LEAVES = {LOAD, RECV, SEND, FFN, FREE}


class Trajectories:
    """Shard trajectories on the virtual ring (R1-R3, R5) under a layer's trajectory rule."""

    def __init__(self, order: tuple[int, ...]) -> None:
        self.order = order
        self.n = len(order)
        self.pos = {c: i for i, c in enumerate(order)}

    def _first(self, start: int, members: int, d: int) -> int:
        """First member reached walking from ring position `start` (included) in direction d."""
        for k in range(self.n):
            c = self.order[(start + d * k) % self.n]
            if members >> c & 1:
                return c
        raise ValueError("empty member set")

    def of(self, home: int, members: int, d: int, rule: str) -> tuple[int, int, list[int]]:
        """(entry, end, chiplets walked from the home) of a shard; d = +1 cw, -1 ccw."""
        n, pos = self.n, self.pos
        start = 0 if rule == "single-entry" else pos[home]
        entry = self._first(start, members, d)
        if rule == "fullring":
            hops = n - 1
        else:
            # the last member: the first one walking back from just before the entry
            last = self._first(pos[entry] - d, members, -d)
            hops = (pos[entry] - pos[home]) * d % n + (pos[last] - pos[entry]) * d % n
        path = [self.order[(pos[home] + d * k) % n] for k in range(hops + 1)]
        return entry, path[-1], path


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


def decode_dynamic(loaded: Loaded, phase: Phase, routing: Routing, step: int,
                   traj: Trajectories) -> tuple[StreamStep, int]:
    """A dynamic layer step: the controller's table, each template run per shard visit; returns
    the engine work and the controller's latency (ns)."""
    l = phase.layer
    layer: LayerDesc | None = loaded.layers.get(l)
    if layer is None or layer.policy is None:
        raise _error(loaded, 0, phase.bounds[0][0], f"a template for layer {l}, which is not an FSE-DP MoE layer")
    n = loaded.target.num_chiplets
    cost = CostModel(loaded.target, layer.spec.dtype)
    sched = schedule(StepRouting(routing.experts, routing.weights, routing.token_chiplet, l, step), layer.plan,
                     Ring(loaded.target.ring), cost, layer.policy)
    templates = [_template(loaded, phase, c) for c in range(n)]
    st = empty_stream_step(loaded, layer, l, step)
    st.error = loaded.error
    lay = layer.layout
    rule = layer.policy.trajectory
    port_of = [{nb: p for p, nb in enumerate(st.neighbour[c])} for c in range(n)]
    memo: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}
    dma: dict[tuple[int, int], list[tuple]] = {}
    st.members = {s.expert: s.members for s in sched.streams}
    st.pos = {s.expert: k for k, s in enumerate(sched.streams)}
    st.dirs = {0 if s.direction > 0 else 1 for s in sched.streams}
    for pos, stream in enumerate(sched.streams):
        e, members, d = stream.expert, stream.members, stream.direction
        dirbit = 0 if d > 0 else 1
        nbytes = int(lay.tile_bytes[e])
        for j in range(layer.plan.num_shards):
            home, ch, addr = int(lay.chiplet[e, j]), int(lay.channel[e, j]), int(lay.addr[e, j])
            entry, end, path = traj.of(home, members, d, rule)
            computing = False
            last = len(path) - 1
            for hop, c in enumerate(path):
                computing = computing or c == entry
                bits = (hop == 0) | (hop > 0) << 1 | bool(computing and members >> c & 1) << 2 | (hop < last) << 3 \
                    | (hop == last) << 4
                acts = memo.get((c, bits))
                if acts is None:
                    conds = {WHEN_HOME: hop == 0, WHEN_INBOUND: hop > 0, WHEN_MEMBER: bool(bits & 4),
                             WHEN_FORWARD: hop < last, WHEN_LAST: hop == last, WHEN_VISIT: True}
                    acts = memo[(c, bits)] = _actions(templates[c][0], conds)
                for op, i, where in acts:
                    r = templates[c][0][i]
                    at = (c, templates[c][1] + i)

                    def fail(message: str, c: int = c, i: int = i) -> ProgramError:
                        return _error(loaded, c, templates[c][1] + i, f"layer {l} step {step}, shard e{e} j{j}: "
                                                                       + message)

                    if op == LOAD:
                        if c != home:
                            raise fail(f"load on chiplet {c}, but the shard lives in chiplet {home}'s DRAM")
                        if r[UNIT] not in (ANY_UNIT, ch) or r[WIDE] not in (ANY_ADDR, addr) or r[ARG] not in (0, nbytes):
                            raise fail(f"load names a channel, address or size the shard does not have "
                                       f"(it is {nbytes} bytes at {addr:#x} on channel {ch})")
                        dma.setdefault((c, ch), []).append((pos, e, j, nbytes, entry, end, dirbit))
                    elif op == RECV:
                        if hop == 0:
                            raise fail("recv of a shard that starts here (it does not arrive over a link)")
                        port = port_of[c][path[hop - 1]]
                        if r[UNIT] not in (ANY_UNIT, port):
                            raise fail(f"recv on port {r[UNIT]}, but the shard arrives on port {port}")
                        left = st.recv_left[c][port]
                        left[e] = left.get(e, 0) + 1
                        st.where.setdefault(("recvs", c, e, port), at)
                        st.recv_bytes[c][port][e] = r[ARG] or nbytes
                    elif op == SEND:
                        if not where:
                            raise fail("send port=* without a WHERE before it")
                        if hop == last:
                            raise fail("where next: the shard's trajectory ends here")
                        port = port_of[c][path[hop + 1]]
                        if r[UNIT] not in (ANY_UNIT, port):
                            raise fail(f"send on port {r[UNIT]}, but the next chiplet is behind port {port}")
                        if st.send_port[c].setdefault(e, port) != port:
                            raise fail("shards of one stream leave a chiplet by two ports")
                        st.send_left[c][e] = st.send_left[c].get(e, 0) + 1
                        st.where.setdefault(("sends", c, e), at)
                        st.send_bytes[c][e] = r[ARG] or nbytes
                    elif op == FFN:
                        tokens = routing.size(c, e)
                        if r[ARG] not in (0, tokens):
                            raise fail(f"ffn on tokens={r[ARG]}, but chiplet {c} holds {tokens} routed to expert {e}")
                        st.ffn_left[c][e] = st.ffn_left[c].get(e, 0) + 1
                        st.where.setdefault(("ffns", c, e), at)
                        st.ffn_tokens[c][e] = tokens
                    else:
                        st.free_left[c][e] = st.free_left[c].get(e, 0) + 1
                        st.where.setdefault(("frees", c, e), at)
    for c in range(n):  # a use nobody budgeted for is reported at the chiplet's STREAMS
        for e in st.members:
            st.where.setdefault(("stream", c, e), (c, templates[c][2]))
    st.dma = [(c, ch, loads) for (c, ch), loads in sorted(dma.items())]
    return st, cost.scheduler_ns(len(sched.streams))
