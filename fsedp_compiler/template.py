"""Evaluate a dynamic `dataflow.layer` template for one chiplet against a step's stream table.

This is what the controller does at run time (dynamic mode): for every shard of every stream
in table order (R6), decide each `when` condition for this chiplet and resolve each `where`
destination. The result is the multiset of work the chiplet does, comparable with the static
expansion of the same step (static and dynamic must do exactly the same work).
"""

from __future__ import annotations

from collections.abc import Iterator

from xdsl.ir import Operation

from fsedp_compiler.dialects import dataflow as df

from .streaming import Trip

#: One unit of work: (op, chiplet, expert, shard, peer chiplet or DRAM channel or token count).
Work = tuple[str, int, int, int, int]


def conditions(trip: Trip, hop: int) -> dict[str, bool]:
    """The `when` conditions of `trip` at its `hop`-th chiplet."""
    return {
        "home": hop == 0,
        "inbound": hop > 0,
        "member": trip.computes[hop],
        "forward": hop + 1 < len(trip.path),
        "visit": True,
    }


def _run(ops: list[Operation], chiplet: int, hop: int, trip: Trip, tokens: dict[int, tuple[int, ...]],
         dest: int | None) -> Iterator[Work]:
    cond = conditions(trip, hop)
    for op in ops:
        if isinstance(op, df.WhenOp):
            if cond[op.prop_str("cond")]:
                yield from _run(list(op.body.block.ops), chiplet, hop, trip, tokens, dest)
        elif isinstance(op, df.WhereOp):
            yield from _run(list(op.body.block.ops), chiplet, hop, trip, tokens, trip.path[hop + 1])
        elif isinstance(op, df.LoadOp):
            yield ("load", chiplet, trip.expert, trip.shard, trip.channel)
        elif isinstance(op, df.RecvOp):
            yield ("recv", chiplet, trip.expert, trip.shard, trip.path[hop - 1])
        elif isinstance(op, df.FfnOp):
            yield ("ffn", chiplet, trip.expert, trip.shard, tokens[trip.expert][chiplet])
        elif isinstance(op, df.SendOp):
            assert dest is not None, "dataflow.send outside dataflow.where"
            yield ("send", chiplet, trip.expert, trip.shard, dest)
        elif isinstance(op, df.FreeOp):
            yield ("free", chiplet, trip.expert, trip.shard, 0)


def run_layer_template(layer: df.LayerOp, chiplet: int, trips: list[Trip],
                       tokens: dict[int, tuple[int, ...]]) -> list[Work]:
    """The work `chiplet` does in one step: the template's foreach_shard body per trip."""
    work: list[Work] = []
    for op in layer.body.block.ops:
        if isinstance(op, df.ForEachShardOp):
            body = list(op.body.block.ops)
            for trip in trips:
                for hop, c in enumerate(trip.path):  # a trip may pass a chiplet twice
                    if c == chiplet:
                        work.extend(_run(body, chiplet, hop, trip, tokens, None))
    return work
