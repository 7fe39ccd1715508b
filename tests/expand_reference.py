"""A frozen copy of the row-by-row static expansion as it was before the numpy columns (issue 17):
the specification `fsedp_compiler.ir.expand_columns` must reproduce exactly (test_expand_columns.py)."""

from __future__ import annotations

from fsedp_compiler.fsedp.ring import directed_routes
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.streaming import StreamCounts, stream_counts
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
