"""Chrome trace-event JSON for Perfetto: a process per chiplet, a thread per engine,
one complete ("X") event per op, and flow arrows along each shard's hops."""

from __future__ import annotations

from typing import Any

from fsedp_compiler.isa import ALL_EXPERTS

from fsedp_compiler.sim.run import TimedOp


def chrome_trace(ops: list[TimedOp], num_chiplets: int, title: str) -> dict[str, Any]:
    engines: dict[int, dict[str, int]] = {c: {} for c in range(num_chiplets)}
    events: list[dict[str, Any]] = []
    for c in range(num_chiplets):
        events.append({"ph": "M", "name": "process_name", "pid": c, "tid": 0, "args": {"name": f"chiplet {c}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": c, "tid": 0, "args": {"sort_index": c}})
    order = ("compute", "dma", "link")
    for op in sorted(ops, key=lambda o: (o.chiplet, o.engine)):
        if op.engine not in engines[op.chiplet]:
            tid = len(engines[op.chiplet]) + 1
            engines[op.chiplet][op.engine] = tid
            events.append({"ph": "M", "name": "thread_name", "pid": op.chiplet, "tid": tid, "args": {"name": op.engine}})
            rank = next((i for i, p in enumerate(order) if op.engine.startswith(p)), len(order))
            events.append({"ph": "M", "name": "thread_sort_index", "pid": op.chiplet, "tid": tid,
                           "args": {"sort_index": rank * 100 + tid}})
    flow_id = 0
    last_hop: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
    for op in sorted(ops, key=lambda o: (o.start, o.chiplet, o.engine)):
        tid = engines[op.chiplet][op.engine]
        expert = "*" if op.expert == ALL_EXPERTS else op.expert  # rows of whole token sets
        name = op.kind if op.expert < 0 else f"{op.kind} L{op.layer} E{expert} S{op.shard}"
        args = {"layer": op.layer, "step": op.step}
        if op.expert >= 0:
            args.update(expert=op.expert, shard=op.shard)
        if op.peer >= 0:
            args["to"] = op.peer
        events.append({"ph": "X", "name": name, "cat": op.kind, "pid": op.chiplet, "tid": tid,
                       "ts": op.start / 1000, "dur": (op.end - op.start) / 1000, "args": args})
        if op.kind in ("load", "send") and op.expert >= 0:
            key = (op.layer, op.step, op.expert, op.shard)
            if key in last_hop:
                fid, pid, ptid = last_hop[key]
                events.append({"ph": "f", "bp": "e", "id": fid, "name": "shard", "cat": "hop",
                               "pid": op.chiplet, "tid": tid, "ts": op.start / 1000})
            flow_id += 1
            events.append({"ph": "s", "id": flow_id, "name": "shard", "cat": "hop", "pid": op.chiplet, "tid": tid,
                           "ts": op.end / 1000})
            last_hop[key] = (flow_id, op.chiplet, tid)
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"title": title}}
