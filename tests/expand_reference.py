"""A frozen copy of the row-by-row static expansion as it was before the numpy columns (issue 17):
the specification `fsedp_compiler.ir.expand_columns` must reproduce exactly (test_expand_columns.py)."""

from __future__ import annotations

from dataclasses import dataclass

from fsedp_compiler.fsedp.ring import Ring, directed_routes
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.ir.layers import LayerContext
from fsedp_compiler.ir.layout import LayerLayout
from fsedp_compiler.ir.rows import ir_row


def step_ranges(sched: StepSchedule, ctx: LayerContext, ports: list[dict[int, int]], n: int,
                layout: LayerLayout) -> list[list[tuple]]:
    """Per chiplet, the IR rows of one step's ranges (without the stream table and the SYNC)."""
    plan, rings, rule = ctx.plan, ctx.rings, ctx.policy.trajectory
    s = sched.step
    rows: list[list[tuple]] = [[] for _ in range(n)]
    channels, m = len(plan.channels), plan.num_shards
    for st in sched.streams:
        e, ring = st.expert, rings[st.ring]
        size = plan.shard_bytes(e)
        per_way = stream_counts(plan, ring, e, st.members, st.direction, rule)
        ways, entries, lengths = directed_routes(ring, st.members, st.direction, rule)
        for index, k in sorted(plan.channel_counts(e).items(), key=lambda ik: plan.channels[ik[0]]):
            if not k:
                continue
            c, ch = plan.channels[index]
            end = ring.order[(ring.pos(c) + ways[c] * lengths[c]) % ring.size]
            j0 = (index - e * m) % channels
            rows[c].append(ir_row("loads", ch=ch, s=s, e=e, j=j0, stride=channels, n=k, bytes=size,
                                  addr=int(layout.addr[e, j0]), entry=entries[c], end=end))
        for c in range(n):
            visits = sum(counts.visits[c] for counts in per_way.values())
            if not visits:
                continue
            for role, k_of, side in (("recvs", StreamCounts.recvs, -1), ("sends", StreamCounts.sends, 1)):
                by_port = sorted((ports[c][ring.step(c, side * d)], k) for d, counts in per_way.items()
                                 if (k := k_of(counts, c)))
                for port, k in by_port:
                    rows[c].append(ir_row(role, port=port, s=s, e=e, n=k, bytes=size))
            if st.tokens[c]:
                rows[c].append(ir_row("ffns", s=s, e=e, n=m, tokens=st.tokens[c]))
            rows[c].append(ir_row("frees", s=s, e=e, n=visits))
    return rows


# What a stream's trips imply per chiplet, arc by arc (the per-stream rule the columns vectorise).

@dataclass(frozen=True)
class StreamCounts:
    """Per chiplet, how many of one stream's shards start there (DRAM home, per channel),
    pass through or stop there (visits) and end there; O(M + N) to compute, no per-hop work."""

    loads: dict[tuple[int, int], int]
    visits: list[int]
    ends: list[int]
    loaded: list[int]
    """Per chiplet, the shards loaded there (`loads` summed over its channels)."""

    def recvs(self, chiplet: int) -> int:
        return self.visits[chiplet] - self.loaded[chiplet]

    def sends(self, chiplet: int) -> int:
        return self.visits[chiplet] - self.ends[chiplet]


def stream_counts(plan: ShardPlan, ring: Ring, expert: int, members: int, direction: int,
                  rule: str = "nearest") -> dict[int, StreamCounts]:
    """The shard counts of one stream (see `StreamCounts`) per direction its shards walk (a SHORT
    stream may walk both), from each home's arc on the ring."""
    ways, _, lengths = directed_routes(ring, members, direction, rule)
    out = {}
    for d in sorted({ways[c] for c in plan.home_counts(expert)}, reverse=True):
        out[d] = _counts(plan, ring, expert, d, lengths, [c for c in plan.home_counts(expert) if ways[c] == d])
    return out


def _counts(plan: ShardPlan, ring: Ring, expert: int, direction: int, lengths: list[int],
            homes: list[int]) -> StreamCounts:
    """The counts of the shards of `expert` homed at `homes`, all walking `direction`."""
    n = ring.size
    loads = {plan.channels[index]: k for index, k in plan.channel_counts(expert).items()
             if k and plan.channels[index][0] in homes}
    loaded = [0] * n
    for (c, _), k in loads.items():
        loaded[c] += k
    per_home = {c: k for c, k in plan.home_counts(expert).items() if c in homes}
    visits_walk = [0] * (n + 1)  # difference array over walk index w (ring position along `direction`)
    ends = [0] * n
    laps = 0
    for home, k in per_home.items():
        length = lengths[home]
        last = ring.order[(ring.pos(home) + direction * length) % n]
        full, rest = divmod(length + 1, n)  # the arc covers length + 1 chiplets, maybe lapping
        laps += full * k
        start = ring.pos(home) if direction > 0 else n - 1 - ring.pos(home)
        end = start + rest
        visits_walk[start] += k
        if end <= n:
            visits_walk[end] -= k
        else:
            visits_walk[n] -= k
            visits_walk[0] += k
            visits_walk[end - n] -= k
        ends[last] += k
    visits = [0] * n
    acc = laps
    for w in range(n):
        acc += visits_walk[w]
        pos = w if direction > 0 else n - 1 - w
        visits[ring.order[pos]] = acc
    return StreamCounts(loads, visits, ends, loaded)
