"""JOIN, a task without work that stands for all of its dependencies, in both implementations:
the estimator's task-graph executor and the machine's task engine must time and hold a graph
with joins exactly as the same graph with every wait on a join replaced by waits on what it joins."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fsedp_compiler.baselines import taskgraph as tg
from fsedp_compiler.sim import task_engine as te

CHIPLETS = 3

#: (kind, chiplet, deps, busy, latency, holds): the abstract task both implementations are built from
Spec = tuple[str, int, tuple[int, ...], int, int, int]


@st.composite
def graphs(draw) -> list[Spec]:
    out: list[Spec] = []
    for i in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["load", "toksend", "acc", "join", "join"]))
        deps = tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=5)))) if i else ()
        if kind == "join":
            out.append((kind, draw(st.integers(0, CHIPLETS - 1)), deps, 0, 0, 0))
            continue
        holds = 0 if kind == "acc" else draw(st.integers(1, 100))
        out.append((kind, draw(st.integers(0, CHIPLETS - 1)), deps, draw(st.integers(1, 50)),
                    draw(st.integers(0, 20)), holds))
    # a join is there for its waiters (one without any would hold what it joins until it resolves,
    # which no graph without it can say): give every join one
    waited = {d for spec in out for d in spec[2]}
    for i, spec in enumerate(list(out)):
        if spec[0] == "join" and i not in waited:
            out.append(("acc", spec[1], (i,), 1, 0, 0))
    return out


def flatten(specs: list[Spec]) -> list[Spec]:
    """The graph without joins: a wait on a join becomes waits on what it joins."""
    through: dict[int, set[int]] = {}  # join -> the non-join tasks it stands for
    new_index: dict[int, int] = {}
    out: list[Spec] = []
    for i, (kind, c, deps, busy, lat, holds) in enumerate(specs):
        real: set[int] = set()
        for d in deps:
            real |= through[d] if d in through else {d}
        if kind == "join":
            through[i] = real
            continue
        new_index[i] = len(out)
        out.append((kind, c, tuple(sorted(new_index[d] for d in real)), busy, lat, holds))
    return out


def estimate(specs: list[Spec]) -> tuple[list[tuple[int, int]], int, list[int]]:
    """The estimator's run of the graph: every non-join task's (start, end), makespan, peak SRAM."""
    graph = tg.TaskGraph(0, 0)
    for kind, c, deps, busy, lat, holds in specs:
        peer = (c + 1) % CHIPLETS
        resource = {"load": ("dma", c, 0), "toksend": ("link", c, peer), "acc": ("compute", c, 0),
                    "join": ("control", c, 0)}[kind]
        holder = peer if kind == "toksend" else c
        graph.add(tg.Task(kind, c, resource, busy, lat, deps, 0, 0, holds, peer if kind == "toksend" else -1,
                          holds=holds, holder=holder if holds else -1))
    tl = tg.execute(graph, CHIPLETS)
    spans = [(tl.start[i], tl.end[i]) for i, s in enumerate(specs) if s[0] != "join"]
    return spans, tl.makespan, tl.peak_bytes


def machine(specs: list[Spec]) -> tuple[list[tuple[int, int, str, int]], int, list[int]]:
    """The machine's run of the graph: every engine op's (start, end, kind, chiplet) in start
    order, makespan, peak SRAM."""
    tasks = []
    for i, (kind, c, deps, busy, lat, holds) in enumerate(specs):
        peer = (c + 1) % CHIPLETS
        engine = {"load": ("dma", c, 0), "toksend": ("link", c, 0), "acc": ("compute", c, 0),
                  "join": ("control", c, 0)}[kind]
        waits = tuple(d + 1 for d in deps)
        tasks.append(te.Task(i + 1, kind, c, engine, busy, lat, waits, 0, 0, nbytes=holds,
                             peer=peer if kind == "toksend" else -1, tokens=1, holds=holds,
                             holder=(peer if kind == "toksend" else c) if holds else -1, where=(c, i)))
    run = te.run_task_step(te.TaskStep(0, 0, CHIPLETS, tasks), te.Residency(CHIPLETS), 8, None, None,
                           keep_ops=True)
    assert len(run.ops) == sum(t.kind != "join" for t in tasks)  # a join never takes an engine
    starts = sorted((op[5], op[6], op[0], op[1]) for op in run.ops)
    return starts, run.makespan, run.peak_bytes


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_estimator_join_is_its_dependencies(specs: list[Spec]) -> None:
    assert estimate(specs) == estimate(flatten(specs))


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_machine_join_is_its_dependencies(specs: list[Spec]) -> None:
    assert machine(specs) == machine(flatten(specs))
    assert machine(specs)[1:] == estimate(specs)[1:]  # the two implementations: same makespan and peak
