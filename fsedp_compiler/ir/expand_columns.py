"""A static FSE-DP layer's instructions for every chiplet and step, built as numpy columns.

The same instructions `expand-dataflow` describes (per stream: LOADS per DRAM channel, RECVS and
SENDS per port, FFNS, FREES; a SYNC per step), computed for all streams of a layer at once: every
stream's trajectories per home (`ring.route_lengths`, both ways), its per-chiplet shard counts
(visits, loads, ends: the arcs of `streaming.stream_counts` as [streams, homes, chiplets] sums),
then one flat table of candidate rows that a single lexsort puts into each chiplet's order. No
Python work per instruction: the static expansion of a large model makes millions of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsedp_compiler.dialects.dataflow import FIELDS, KINDS
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW, Ring, route_lengths, walk_order
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.ir.layout import LayerLayout

_K = {name: i for i, name in enumerate(KINDS)}
#: the ISA's direction of a stream row (`isa.opcodes.DIRECTIONS`), indexed by scheduler code + 1
DIR_BIT = np.zeros(4, dtype=np.int64)
for _code, _bit in ((CW, 0), (CCW, 1), (SHORT, 2), (SHORT_CCW, 3)):
    DIR_BIT[_code + 1] = _bit
#: role order of a stream's ranges on one chiplet (R6: loads, receives, sends, FFN, frees)
_LOADS, _RECVS, _SENDS, _FFNS, _FREES = range(5)
#: at most this many [streams x homes x chiplets] cells per block (bounds memory at any chiplet count)
_BLOCK_CELLS = 1 << 21


@dataclass(frozen=True)
class LayerSchedule:
    """A layer's static schedule as arrays (`fsedp.static_schedule`): per stream its step, expert,
    direction code (`ring.CW`, `CCW`, `SHORT`, `SHORT_CCW`), ring and local tokens per chiplet."""

    steps: int
    step: np.ndarray
    expert: np.ndarray
    direction: np.ndarray
    ring: np.ndarray
    tokens: np.ndarray
    """[streams, chiplets] local tokens (0: not a member)"""


@dataclass(frozen=True)
class _Ways:
    """Per stream and home chiplet: the way its shards walk (0 cw, 1 ccw), their entry member,
    links walked and last chiplet."""

    way: np.ndarray
    entry: np.ndarray
    length: np.ndarray
    last: np.ndarray


def _one_way(ring: Ring, members: np.ndarray, sign: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(entry chiplet, links walked) per [stream, home chiplet] walking `sign` (`ring.routes`)."""
    n = ring.size
    chips = np.asarray(walk_order(ring, sign), dtype=np.int64)
    widx = np.empty(n, dtype=np.int64)
    widx[chips] = np.arange(n)
    wm = members[:, chips]
    length_w = route_lengths(wm, sign, rule)
    w = np.arange(n, dtype=np.int64)
    if rule == "single-entry":
        first = wm.argmax(axis=1)
        x = first if sign > 0 else np.where(wm[:, n - 1], n - 1, first)
        entry_w = np.broadcast_to(x[:, None], wm.shape)
    else:  # the first member at or after each walk index, cyclically
        big = 2 * n
        cand = np.where(wm, w, big)
        first_from = np.minimum.accumulate(cand[:, ::-1], axis=1)[:, ::-1]
        entry_w = np.where(first_from == big, first_from[:, :1], first_from)
    return chips[entry_w][:, widx], length_w[:, widx]


def _ways(ring: Ring, members: np.ndarray, direction: np.ndarray, rule: str) -> _Ways:
    """Every home's route for streams of any direction code on one ring (`ring.directed_routes`)."""
    n = ring.size
    cw_entry, cw_len = _one_way(ring, members, CW, rule)
    ccw_entry, ccw_len = _one_way(ring, members, CCW, rule)
    d = direction[:, None]
    shorter_ccw = (ccw_len < cw_len) | ((ccw_len == cw_len) & (d == SHORT_CCW))
    way = np.where(d == CW, 0, np.where(d == CCW, 1, shorter_ccw.astype(np.int64)))
    entry = np.where(way == 0, cw_entry, ccw_entry)
    length = np.where(way == 0, cw_len, ccw_len)
    order = np.asarray(ring.order, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    sign = np.where(way == 0, 1, -1)
    last = order[(pos[None, :] + sign * length) % n]
    return _Ways(way, entry, length, last)


def _counts(ring: Ring, ways: _Ways, home_k: np.ndarray, way: int) -> tuple[np.ndarray, np.ndarray]:
    """(visits, ends) per [stream, chiplet] of the shards walking `way` (`streaming._counts`)."""
    n = ring.size
    chips = np.asarray(walk_order(ring, 1 if way == 0 else -1), dtype=np.int64)
    widx = np.empty(n, dtype=np.int64)
    widx[chips] = np.arange(n)
    offset = (widx[None, :] - widx[:, None]) % n  # [home, target]: walk distance
    k = np.where(ways.way == way, home_k, 0)
    visits = np.zeros(k.shape, dtype=np.int64)
    ends = np.zeros(k.shape, dtype=np.int64)
    block = max(1, _BLOCK_CELLS // (n * n))
    target = np.arange(n)
    for lo in range(0, len(k), block):
        kb = k[lo:lo + block]
        arc = ways.length[lo:lo + block] + 1
        covered = (arc // n)[:, :, None] + (offset[None, :, :] < (arc % n)[:, :, None])
        visits[lo:lo + block] = np.einsum("sh,sht->st", kb, covered)
        ends[lo:lo + block] = np.einsum("sh,sht->st", kb, ways.last[lo:lo + block, :, None] == target)
    return visits, ends


PlanTables = tuple[np.ndarray, np.ndarray, np.ndarray]


def plan_tables(plan: ShardPlan, n: int) -> PlanTables:
    """The shard plan's tables `layer_columns` reads (a caller expanding a layer in several step
    ranges computes them once). Per expert: shards per DRAM chiplet [E, n], shards per channel
    index [E, C], shard bytes [E]."""
    experts, channels = plan.num_streams, len(plan.channels)
    home = np.zeros((experts, n), dtype=np.int64)
    chan = np.zeros((experts, channels), dtype=np.int64)
    for e in range(experts):
        for c, k in plan.home_counts(e).items():
            home[e, c] = k
        for index, k in plan.channel_counts(e).items():
            chan[e, index] = k
    size = np.array([plan.shard_bytes(e) for e in range(experts)], dtype=np.int64)
    return home, chan, size


class _Rows:
    """Candidate rows as flat columns: sort keys (chiplet, step, stream, role, unit, n) and fields."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, kind: str, chip: np.ndarray, step: np.ndarray, stream: np.ndarray, role: int | np.ndarray,
            **fields: np.ndarray | int) -> None:
        size = len(chip)
        if not size:
            return
        part = {"chip": chip, "step": step, "stream": stream, "role": np.broadcast_to(role, size),
                "kind": np.full(size, _K[kind])}
        for name, value in fields.items():
            part[name] = np.broadcast_to(value, size)
        self.parts.append(part)

    def columns(self, names: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for name in names:
            out[name] = np.concatenate([p[name] if name in p else np.zeros(len(p["chip"]), dtype=np.int64)
                                        for p in self.parts]).astype(np.int64)
        return out


def layer_rows(sched: LayerSchedule, plan: ShardPlan, rings: list[Ring], rule: str,
               ports: list[dict[int, int]], layout: LayerLayout, table_rows: list[list[tuple[int, ...]]],
               steps: range | None = None, tables: PlanTables | None = None,
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows of `layer_columns` as one table in chiplet order: `chip` and the `dataflow.
    instructions` columns, and the bounds of each chiplet's rows (n + 1 indices)."""
    n = len(ports)
    m, channels = plan.num_shards, len(plan.channels)
    home_tab, chan_tab, size_tab = tables if tables is not None else plan_tables(plan, n)
    streams = len(sched.expert)
    rows = _Rows()
    ids = np.arange(streams, dtype=np.int64)
    if steps is None:
        steps = range(sched.steps)
        chosen = np.ones(streams, dtype=bool)
    else:  # the streams of those steps (the schedule may hold only them: `layer_schedule(..., steps)`)
        assert steps.step == 1
        chosen = (sched.step >= steps.start) & (sched.step < steps.stop)
    for r in np.unique(sched.ring[chosen]).tolist():
        sel = np.flatnonzero((sched.ring == r) & chosen)
        ring = rings[r]
        e = sched.expert[sel]
        members = sched.tokens[sel] > 0
        ways = _ways(ring, members, sched.direction[sel], rule)
        home_k = home_tab[e]
        sid, step, size = ids[sel], sched.step[sel], size_tab[e]
        # loads: one per channel holding shards of the expert, on that channel's chiplet
        k_ch = chan_tab[e]
        s_i, idx = np.nonzero(k_ch)
        chip = np.array([c for c, _ in plan.channels], dtype=np.int64)[idx]
        ch = np.array([h for _, h in plan.channels], dtype=np.int64)[idx]
        ee = e[s_i]
        j0 = (idx - ee * m) % channels
        rows.add("loads", chip, step[s_i], sid[s_i], _LOADS, unit=ch, shard=j0, y=channels, n=k_ch[s_i, idx],
                 arg=size[s_i], wide=layout.addr[ee, j0].astype(np.int64), z=ways.entry[s_i, chip],
                 x=ways.last[s_i, chip], expert=ee)
        visits_total = np.zeros(members.shape, dtype=np.int64)
        per_way = []
        for way in (0, 1):
            visits, ends = _counts(ring, ways, home_k, way)
            loaded = np.where(ways.way == way, home_k, 0)
            visits_total += visits
            per_way.append((way, visits, ends, loaded))
        for way, visits, ends, loaded in per_way:
            sign = 1 if way == 0 else -1
            for role, k, side in ((_RECVS, visits - loaded, -1), (_SENDS, visits - ends, 1)):
                port = np.array([ports[c][ring.step(c, side * sign)] for c in range(n)], dtype=np.int64)
                s_i, c_i = np.nonzero((k > 0) & (visits_total > 0))
                rows.add("recvs" if role == _RECVS else "sends", c_i, step[s_i], sid[s_i], role, unit=port[c_i],
                         n=k[s_i, c_i], arg=size[s_i], expert=e[s_i])
        tok = sched.tokens[sel]
        s_i, c_i = np.nonzero((tok > 0) & (visits_total > 0))
        rows.add("ffns", c_i, step[s_i], sid[s_i], _FFNS, n=m, arg=tok[s_i, c_i], expert=e[s_i])
        s_i, c_i = np.nonzero(visits_total > 0)
        rows.add("frees", c_i, step[s_i], sid[s_i], _FREES, n=visits_total[s_i, c_i], expert=e[s_i])
    chips = np.arange(n, dtype=np.int64)
    table = [(s, w, row) for s in steps for w, row in enumerate(table_rows[s])]
    if table:  # the stream table opens each step (stream -1, in table order) on every chiplet
        arr = np.repeat(np.array([row for _, _, row in table], dtype=np.int64), n, axis=0)
        fields = {f: arr[:, i] for i, (f, _) in enumerate(FIELDS) if f not in ("kind", "step")}
        rows.add("nop", np.tile(chips, len(table)), arr[:, 3], np.full(len(arr), -1),
                 np.repeat(np.array([w for _, w, _ in table], dtype=np.int64), n), **fields)
        rows.parts[-1]["kind"] = arr[:, 0]
    closed = np.arange(steps.start, steps.stop, dtype=np.int64)  # the barrier closes each step
    rows.add("sync", np.tile(chips, len(closed)), np.repeat(closed, n), np.full(n * len(closed), streams), 0)
    names = [f for f, _ in FIELDS if f not in ("kind", "step")]
    cols = rows.columns(["chip", "stream", "role", "kind", "step", *names])
    order = np.lexsort((cols["n"], cols["unit"], cols["role"], cols["stream"], cols["step"], cols["chip"]))
    cols = {f: cols[f][order] for f in ("chip", *(f for f, _ in FIELDS))}
    return cols, np.searchsorted(cols["chip"], np.arange(n + 1))


def layer_columns(sched: LayerSchedule, plan: ShardPlan, rings: list[Ring], rule: str,
                  ports: list[dict[int, int]], layout: LayerLayout, table_rows: list[list[tuple[int, ...]]],
                  steps: range | None = None, tables: PlanTables | None = None,
                  ) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray]]:
    """Per chiplet, the layer's instruction columns (`dataflow.instructions`) and step offsets.
    `table_rows[s]`: the IR rows every chiplet starts step s with (its stream table).

    `steps` (default: all) expands only those steps, giving exactly their rows of the whole
    expansion (every row depends on its own stream alone, and the sort is stable), so a caller
    can expand a long schedule a few steps at a time; offsets still index every step (empty
    outside `steps`). `tables`: `plan_tables(plan, n)`, when the caller has it already."""
    n = len(ports)
    cols, bounds = layer_rows(sched, plan, rings, rule, ports, layout, table_rows, steps, tables)
    per_chip, offsets = [], []
    for c in range(n):
        lo, hi = int(bounds[c]), int(bounds[c + 1])
        per_chip.append({f: cols[f][lo:hi] for f, _ in FIELDS})
        counts = np.bincount(cols["step"][lo:hi], minlength=sched.steps)
        offsets.append(np.concatenate(([0], np.cumsum(counts))))
    return per_chip, offsets
