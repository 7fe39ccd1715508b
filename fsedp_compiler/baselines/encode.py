"""A baseline layer step's task graph as per-chiplet task-program instructions (ISA v2).

Task i is instruction `id = i + 1` on its chiplet, in task (program) order: LOAD, SEND, TOKSEND,
REDUCE, FFN, ACC, FREE or JOIN, preceded by one WAIT per dependency. A transfer also puts its receive
(RECV for tiles, TOKRECV for token rows and partial sums) with the same id on the receiving
chiplet at the same position. Then SYNC. A buffer is released when the last instruction waiting
on the one that filled it finishes (cache fills: when a FREE names them). Rows are IR rows:
`dataflow.FIELDS` columns, i.e. ISA columns without the layer.
"""

from __future__ import annotations

from fsedp_compiler.baselines.taskgraph import ACC, FFN, FREE, JOIN, LOAD, REDUCE, SEND, TOKSEND, TaskGraph
from fsedp_compiler.ir.layout import LayerLayout
from fsedp_compiler.ir.rows import ir_row as _row

_RECV = {SEND: "recv", TOKSEND: "tokrecv", REDUCE: "tokrecv"}


def graph_rows(graph: TaskGraph, ports: list[dict[int, int]], n: int,
               layout: LayerLayout) -> list[list[tuple[int, ...]]]:
    """Per chiplet, the instruction rows of one layer step."""
    s = graph.step
    rows: list[list[tuple[int, ...]]] = [[] for _ in range(n)]
    for i, t in enumerate(graph.tasks):
        tid = i + 1
        out = rows[t.chiplet]
        out.extend(_row("wait", id=d + 1) for d in t.deps)
        if t.kind == LOAD:
            e, j = t.expert, t.shard
            out.append(_row("load", ch=t.resource[2], s=s, e=e, j=j, id=tid, bytes=t.nbytes,
                            addr=int(layout.addr[e, j]), keep=int(t.keep)))
        elif t.kind == FFN:
            out.append(_row("ffn", s=s, e=t.expert, j=t.shard, id=tid, tokens=len(t.tokens), sets=int(t.sets)))
        elif t.kind == ACC:
            out.append(_row("acc", s=s, e=t.expert, g=t.shard, row=t.row, tokens=t.rows, id=tid))
        elif t.kind == FREE:
            out.append(_row("free", s=s, e=t.expert, j=t.shard, id=tid))
        elif t.kind == JOIN:
            out.append(_row("join", s=s, id=tid))
        elif t.kind == SEND:
            keys = dict(s=s, e=t.expert, j=t.shard, id=tid, bytes=t.nbytes)
            out.append(_row("send", port=ports[t.chiplet][t.peer], **keys))
            rows[t.peer].append(_row("recv", port=ports[t.peer][t.chiplet], **keys))
        else:  # TOKSEND, REDUCE
            keys = dict(s=s, e=t.expert, g=t.shard, row=t.row, tokens=t.rows, id=tid, bytes=t.nbytes)
            out.append(_row(t.kind, port=ports[t.chiplet][t.peer], **keys))
            rows[t.peer].append(_row("tokrecv", port=ports[t.peer][t.chiplet], **keys))
    for c in range(n):
        rows[c].append(_row("sync", s=s))
    return rows
