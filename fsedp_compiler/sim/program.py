"""From instruction streams to the work of each layer step, checked against the stream table.

Static programs carry each step's stream table (STREAM rows) and range instructions; dynamic
programs carry a when/where template that the controller runs against the scheduler's table
(`scheduler.schedule` on the trace's routing, the same function the compiler uses). Either way
the step's shard trips follow from the table (R1-R5), and every chiplet's instructions must ask
for exactly the loads, sends, receives, FFNs and frees those trips imply: anything else is an
inconsistent program, reported before timing starts.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fsedp_compiler.backends import isa
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.routing import RoutingTrace, load_trace
from fsedp_compiler.scheduler import Policy, StepRouting, StepSchedule, Stream, schedule
from fsedp_compiler.streaming import Trip, trajectories
from fsedp_compiler.taskgraph import TaskGraph

from .loader import Loaded

#: Work keys: (role, chiplet, expert, unit) -> shard count; unit = channel, port, or 0.
WorkCounts = Counter


@dataclass
class BlockStep:
    """One decoder block at one step: its dense part per chiplet and, on MoE blocks, the
    scheduled streams, their trips and the scheduler latency charged (dynamic mode)."""

    layer: int
    step: int
    dense_tokens: list[int]
    schedule: StepSchedule | None = None
    trips: list[Trip] | None = None
    scheduler_ns: int = 0
    graph: TaskGraph | None = None
    """Baseline strategies: the step's task graph (instead of a schedule and trips)."""


def expected_counts(trips: list[Trip], ports: list[dict[int, int]]) -> WorkCounts:
    """The work the trips imply for every chiplet (what its instructions must say)."""
    work: WorkCounts = Counter()
    for t in trips:
        work[("load", t.path[0], t.expert, t.channel)] += 1
        for hop, c in enumerate(t.path):
            if hop > 0:
                work[("recv", c, t.expert, ports[c][t.path[hop - 1]])] += 1
            if hop + 1 < len(t.path):
                work[("send", c, t.expert, ports[c][t.path[hop + 1]])] += 1
            if t.computes[hop]:
                work[("ffn", c, t.expert, 0)] += 1
            work[("free", c, t.expert, 0)] += 1
    return work


def _port_maps(loaded: Loaded) -> list[dict[int, int]]:
    return [{nb: p for p, nb in enumerate(prog.ports)} for prog in loaded.programs]


def _check(loaded: Loaded, layer: int, step: int, got: WorkCounts, want: WorkCounts) -> None:
    if got == want:
        return
    for key in sorted(set(got) | set(want)):
        if got[key] != want[key]:
            role, c, e, unit = key
            where = f" unit {unit}" if role in ("load", "send", "recv") else ""
            raise FsedpError(
                f"chiplet {c}, layer {layer} step {step}: the program does {got[key]} {role}(s) of expert {e}{where} "
                f"but the stream table's trajectories need {want[key]}",
                path=loaded.outdir)


def _split_steps(program: isa.Program) -> dict[tuple[int, int], list[tuple[int, ...]]]:
    """Static program: records grouped by (layer, step), in order."""
    out: dict[tuple[int, int], list[tuple[int, ...]]] = {}
    for rec in program.instrs.tolist():
        op = rec[0]
        if op == isa.HALT:
            break
        out.setdefault((rec[3], rec[4]), []).append(rec)
    return out


def static_blocks(loaded: Loaded) -> Iterator[BlockStep]:
    """Every (step, block) of a static program, in program order, validated."""
    n = loaded.target.num_chiplets
    ports = _port_maps(loaded)
    per_chiplet = [_split_steps(p) for p in loaded.programs]
    order = list(dict.fromkeys(per_chiplet[0]))  # (layer, step) in program order
    graphs: dict[int, list[TaskGraph]] = {}
    bundled: RoutingTrace | None = None
    for key in order:
        layer, step = key
        recs = [per_chiplet[c].get(key, []) for c in range(n)]
        dense = [0] * n
        for c in range(n):
            for r in recs[c]:
                if r[0] == isa.DENSE:
                    dense[c] = r[7]
        if layer not in loaded.plans:
            yield BlockStep(layer, step, dense)
            continue
        if "baseline" in loaded.manifest_layer(layer):
            if layer not in graphs:
                if bundled is None:  # the routing this static program was compiled for
                    bundled = load_trace(os.path.join(loaded.outdir, loaded.manifest["trace"]))
                graphs[layer] = baseline_graphs(loaded, layer, bundled)
            graph = graphs[layer][step]
            _check_rows(loaded, graph, recs, ports)
            yield BlockStep(layer, step, dense, graph=graph)
            continue
        plan, ring = loaded.plans[layer], loaded.ring
        tables = [[(r[5], r[7], -1 if r[2] else 1) for r in recs[c] if r[0] == isa.STREAM] for c in range(n)]
        for c in range(1, n):
            if tables[c] != tables[0]:
                raise FsedpError(f"chiplet {c} sees a different stream table for layer {layer} step {step} "
                                 f"than chiplet 0 (R6: one global order)", path=loaded.outdir)
        tokens = {e: [0] * n for e, _, _ in tables[0]}
        got: WorkCounts = Counter()
        names = {isa.LOADS: "load", isa.RECVS: "recv", isa.SENDS: "send", isa.FFNS: "ffn", isa.FREES: "free"}
        for c in range(n):
            for r in recs[c]:
                role = names.get(r[0])
                if role is None:
                    continue
                e = r[5]
                if e not in tokens:
                    raise FsedpError(f"chiplet {c}: {role}s of expert {e}, which has no stream in layer {layer} "
                                     f"step {step}", path=loaded.outdir)
                if role == "ffn":
                    tokens[e][c] = r[7]
                got[(role, c, e, r[1] if role in ("load", "send", "recv") else 0)] += r[6]
        streams = []
        for e, members, d in tables[0]:
            computing = sum(1 << c for c in range(n) if tokens[e][c])
            if computing != members:
                raise FsedpError(f"layer {layer} step {step}: expert {e}'s FFNs run on chiplets {computing:#x} "
                                 f"but its stream table row says S_e = {members:#x}", path=loaded.outdir)
            streams.append(Stream(e, members, d, tuple(tokens[e])))
        sched = StepSchedule(layer, step, tuple(streams), 0)
        trips = trajectories(sched, plan, ring, loaded.manifest_layer(layer).get("trajectory", "nearest"))
        _check(loaded, layer, step, got, expected_counts(trips, ports))
        yield BlockStep(layer, step, dense, sched, trips)


def baseline_graphs(loaded: Loaded, layer: int, trace: RoutingTrace) -> list[TaskGraph]:
    """A baseline layer's task graphs, rebuilt with the compiler's lowering from the bundled trace."""
    from fsedp_compiler.baselines import Options, plan_layer

    entry = loaded.manifest_layer(layer)
    if layer not in trace.layer_indices:
        raise FsedpError(f"the bundled trace has no routing for MoE layer {layer}", path=loaded.outdir)
    return plan_layer(entry["baseline"], loaded.specs[layer], loaded.plans[layer], loaded.target, loaded.ring,
                      trace, trace.layer_indices.index(layer),
                      Options(hydra_skip_single=bool(entry.get("hydra_skip_single", False))))


def _check_rows(loaded: Loaded, graph: TaskGraph, recs: list[list[tuple[int, ...]]],
                ports: list[dict[int, int]]) -> None:
    """A baseline step's instructions must be exactly those of its task graph (same order)."""
    from fsedp_compiler.backends.fsa import format_record
    from fsedp_compiler.baselines.encode import graph_rows

    n = loaded.target.num_chiplets
    for c, want in enumerate(graph_rows(graph, ports, n)):
        got = [r for r in recs[c] if r[0] != isa.DENSE]
        want8 = [(r[0], r[1], r[2], graph.layer, *r[3:]) for r in want]
        if got == want8:
            continue
        i = next((k for k, (a, b) in enumerate(zip(got, want8)) if a != b), min(len(got), len(want8)))
        have = format_record(got[i]) if i < len(got) else "nothing"
        need = format_record(want8[i]) if i < len(want8) else "nothing"
        raise FsedpError(f"chiplet {c}, layer {graph.layer} step {graph.step}: instruction {i} of the step is "
                         f"'{have}' but the strategy's lowering of this routing needs '{need}'", path=loaded.outdir)


def _template(program: isa.Program) -> list[tuple[int, ...]]:
    return [r for r in program.instrs.tolist() if r[0] != isa.HALT]


def _run_template(body: list[tuple[int, ...]], trip: Trip, chiplet: int, ports: dict[int, int],
                  out: WorkCounts) -> None:
    """Interpret a FOREACH body (WHEN / WHERE / leaf records) for one shard on one chiplet,
    once per time its trajectory passes the chiplet."""
    for hop, c in enumerate(trip.path):
        if c == chiplet:
            _run_at(body, trip, hop, chiplet, ports, out)


def _run_at(body: list[tuple[int, ...]], trip: Trip, hop: int, chiplet: int, ports: dict[int, int],
            out: WorkCounts) -> None:
    cond = {isa.WHEN_HOME: hop == 0, isa.WHEN_INBOUND: hop > 0, isa.WHEN_MEMBER: trip.computes[hop],
            isa.WHEN_FORWARD: hop + 1 < len(trip.path), isa.WHEN_LAST: hop == len(trip.path) - 1,
            isa.WHEN_VISIT: True}
    i, dest = 0, None
    skip_until = 0
    while i < len(body):
        op, _unit, flags, *_rest, arg = body[i]
        if i < skip_until:
            i += 1
            continue
        if op == isa.WHEN and not cond[flags]:
            skip_until = i + 1 + arg
        elif op == isa.WHERE:
            dest = trip.path[hop + 1] if hop + 1 < len(trip.path) else None
        elif op == isa.LOAD:
            out[("load", chiplet, trip.expert, trip.channel)] += 1
        elif op == isa.RECV:
            out[("recv", chiplet, trip.expert, ports[trip.path[hop - 1]])] += 1
        elif op == isa.SEND:
            if dest is None:
                raise FsedpError("a dynamic send has no destination: WHERE must precede it")
            out[("send", chiplet, trip.expert, ports[dest])] += 1
        elif op == isa.FFN:
            out[("ffn", chiplet, trip.expert, 0)] += 1
        elif op == isa.FREE:
            out[("free", chiplet, trip.expert, 0)] += 1
        i += 1


def dynamic_blocks(loaded: Loaded, trace: RoutingTrace) -> Iterator[BlockStep]:
    """Every (step, block) of a dynamic program: the scheduler runs per MoE layer step on the
    trace's routing and each chiplet's template is interpreted against its table."""
    n = loaded.target.num_chiplets
    ports = _port_maps(loaded)
    templates = [_template(p) for p in loaded.programs]
    local = np.bincount(trace.token_chiplet, minlength=n).tolist()
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    layer_order: list[int] = []
    for r in templates[0]:
        if r[0] in (isa.DENSE, isa.STREAMS) and r[3] not in layer_order:
            layer_order.append(r[3])
    policies = {entry["index"]: Policy(entry["order"], entry["direction"], entry.get("trajectory", "nearest"))
                for entry in loaded.manifest["layers"]}
    for step in range(trace.num_steps):
        for layer in layer_order:
            if layer not in loaded.plans:
                yield BlockStep(layer, step, local)
                continue
            plan, ring, spec = loaded.plans[layer], loaded.ring, loaded.specs[layer]
            if layer not in positions:
                raise FsedpError(f"the trace has no routing for MoE layer {layer}", field="--trace")
            experts, weights = trace.step(positions[layer], step)
            cost = CostModel(loaded.target, spec.dtype)
            sched = schedule(StepRouting(experts, weights, trace.token_chiplet, layer, step), plan, ring, cost,
                             policies[layer])
            trips = trajectories(sched, plan, ring, policies[layer].trajectory)
            got: WorkCounts = Counter()
            for c in range(n):
                recs = templates[c]
                start = next(i for i, r in enumerate(recs) if r[0] == isa.STREAMS and r[3] == layer)
                foreach = recs[start + 1]
                if foreach[0] != isa.FOREACH:
                    raise FsedpError(f"chiplet {c}: STREAMS for layer {layer} is not followed by FOREACH",
                                     path=loaded.outdir)
                body = recs[start + 2:start + 2 + foreach[7]]
                for trip in trips:
                    _run_template(body, trip, c, ports[c], got)
            _check(loaded, layer, step, got, expected_counts(trips, ports))
            yield BlockStep(layer, step, local, sched, trips, cost.scheduler_ns(len(sched.streams)))
