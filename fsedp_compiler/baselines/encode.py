"""A baseline layer step's task graph as per-chiplet instructions, and back to what they claim.

Each task is one instruction on its chiplet, in task (program) order: LOAD, SEND, FFN, TOKSEND,
REDUCE, ACC; a transfer also puts its receive (RECV for weights, TOKRECV for tokens and partial
sums) on the receiving chiplet at the same position. A weight buffer gets a FREE right after
the last instruction on its chiplet that uses it. Then SYNC. Rows are
(opcode, unit, flags, step, expert, shard, arg), as in `dataflow.instructions`.
"""

from __future__ import annotations

from fsedp_compiler.backends.isa import OPCODE
from fsedp_compiler.taskgraph import FFN, LOAD, REDUCE, SEND, TOKSEND, TaskGraph

_RECV = {SEND: "recv", TOKSEND: "tokrecv", REDUCE: "tokrecv"}


def graph_rows(graph: TaskGraph, ports: list[dict[int, int]], n: int) -> list[list[tuple[int, ...]]]:
    """Per chiplet, the instruction rows of one layer step."""
    s = graph.step
    rows: list[list[tuple[int, ...]]] = [[] for _ in range(n)]
    position: list[tuple[int, int]] = []  # task -> (chiplet, row) of the instruction using its result
    frees: dict[tuple[int, int], list[tuple[int, ...]]] = {}
    last_use: dict[int, tuple[int, int]] = {}
    for i, t in enumerate(graph.tasks):
        if t.kind == LOAD:
            row = (OPCODE["load"], t.resource[2], 0, s, t.expert, t.shard, t.nbytes)
        elif t.kind == FFN:
            row = (OPCODE[t.kind], 0, 0, s, t.expert, t.shard, len(t.tokens))
        elif t.kind in _RECV:
            row = (OPCODE[t.kind], ports[t.chiplet][t.peer], 0, s, t.expert, t.shard, t.nbytes)
        else:  # ACC
            row = (OPCODE["acc"], 0, 0, s, t.expert, t.shard, len(t.tokens))
        rows[t.chiplet].append(row)
        here = (t.chiplet, len(rows[t.chiplet]) - 1)
        for d in t.deps:
            dep = graph.tasks[d]
            if dep.holder == t.chiplet:
                last_use[d] = max(last_use.get(d, here), here)
        if t.kind in _RECV:
            rows[t.peer].append((OPCODE[_RECV[t.kind]], ports[t.peer][t.chiplet], 0, s, t.expert, t.shard, t.nbytes))
            position.append((t.peer, len(rows[t.peer]) - 1))
        else:
            position.append(here)
    for i, t in enumerate(graph.tasks):
        if t.holds and t.kind in (LOAD, SEND):
            c, r = last_use.get(i, position[i])
            frees.setdefault((c, r), []).append((OPCODE["free"], 0, 0, s, t.expert, t.shard, 0))
    out: list[list[tuple[int, ...]]] = []
    for c in range(n):
        merged: list[tuple[int, ...]] = []
        for r, row in enumerate(rows[c]):
            merged.append(row)
            merged.extend(frees.get((c, r), ()))
        merged.append((OPCODE["sync"], 0, 0, s, 0, 0, 0))
        out.append(merged)
    return out
