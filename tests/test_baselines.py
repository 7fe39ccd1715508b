"""Baseline strategies: functional equality, the invariants of their task graphs, their traffic."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.baselines import BASELINES, Options, plan_layer
from fsedp_compiler.baselines.common import StepRoute
from fsedp_compiler.baselines.ep import ep_owner
from fsedp_compiler.baselines.taskgraph import FFN, LOAD, SEND, execute, lower_bound
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import load_model_spec
from fsedp_compiler.passes.shard_experts import auto_plan

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
GOLDEN_BENCH = REPO / "tests" / "golden" / "bench-tiny-moe.json"
SPEC = load_model_spec(str(MODEL))


def compile_sim(fsedpc, tmp: Path, strategy: str, target: str = "paper-2x2", trace: Path = TRACE,
                *extra: str) -> tuple[int, str, dict]:
    out = tmp / strategy
    if out.exists():
        shutil.rmtree(out)
    r = fsedpc("compile", str(MODEL), "--target", target, "--trace", str(trace), "--strategy", strategy,
               "-o", str(out), *extra)
    assert r.code == 0, r.err
    r = fsedpc("simulate", str(out), "--functional", "--metrics", str(tmp / "m.json"))
    metrics = json.loads((tmp / "m.json").read_text()) if r.code == 0 else {}
    return r.code, r.err, metrics


@pytest.mark.parametrize("strategy", list(BASELINES))
def test_functional_equality_paper_2x2(fsedpc, tmp_path: Path, strategy: str) -> None:
    code, err, metrics = compile_sim(fsedpc, tmp_path, strategy)
    assert code == 0, err
    assert metrics["strategy"] == strategy
    assert metrics["functional"]["checked_layer_steps"] == 8
    assert metrics["makespan_ns"] >= metrics["lower_bound_ns"] > 0


@pytest.mark.parametrize("target", ["paper-4x4", "ring-8"])
@pytest.mark.parametrize("strategy", ["ep", "ep-serial", "hydra", "tp", "dp", "fsdp", "ep-cache"])
def test_functional_equality_other_targets(fsedpc, tmp_path: Path, target: str, strategy: str) -> None:
    t = resolve_target(target)
    trace = tmp_path / "t.npz"
    save_trace(synth_trace(SPEC, 24, 2, t.num_chiplets, "zipf:1.0", 0.3, 5), str(trace))
    code, err, metrics = compile_sim(fsedpc, tmp_path, strategy, target, trace)
    assert code == 0, err
    assert metrics["functional"]["checked_layer_steps"] == 8


def test_hydra_skip_single_is_reported_inexact(fsedpc, tmp_path: Path) -> None:
    trace = tmp_path / "t.npz"
    save_trace(synth_trace(SPEC, 4, 1, 4, "uniform", 0.0, 1), str(trace))
    code, err, _ = compile_sim(fsedpc, tmp_path, "hydra", "paper-2x2", trace, "--hydra-skip-single")
    assert code == 2
    assert "functional mismatch" in err and "missing contribution" in err
    assert "Traceback" not in err


def test_compile_errors(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--strategy", "ep", "-o", str(tmp_path / "o"))
    assert r.code == 2 and "ep baseline compiles static programs" in r.err
    r = fsedpc("compile", str(MODEL), "--trace", str(TRACE), "--strategy", "ep", "--hydra-skip-single",
               "-o", str(tmp_path / "o"))
    assert r.code == 2 and "--hydra-skip-single only applies to --strategy hydra" in r.err
    assert not (tmp_path / "o").exists()


def test_simulator_rejects_an_ffn_on_tokens_that_never_arrive(fsedpc, tmp_path: Path) -> None:
    from fsedp_compiler import isa

    out = tmp_path / "ep"
    assert fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "--strategy", "ep",
                  "-o", str(out)).code == 0
    manifest = json.loads((out / "program.json").read_text())
    prog = isa.decode((out / "chiplet_0.bin").read_bytes())
    instrs = prog.instrs.copy()
    ffn = int(np.flatnonzero(instrs["opcode"] == isa.FFN)[0])
    instrs["arg"][ffn] += 1  # claim one token more
    data = isa.encode(isa.Program(prog.chiplet, prog.mode, prog.ports, prog.channels, instrs))
    (out / "chiplet_0.bin").write_bytes(data)
    (out / "chiplet_0.fsa").write_text(isa.to_text(isa.decode(data)))
    manifest["programs"][0]["bin_sha256"] = isa.sha256_hex(data)
    manifest["programs"][0]["fsa_sha256"] = isa.sha256_hex((out / "chiplet_0.fsa").read_bytes())
    from fsedp_compiler.files.digest import with_digest

    (out / "program.json").write_text(json.dumps(with_digest(manifest)))  # past the digest check
    r = fsedpc("simulate", str(out))
    assert r.code == 2, r.err
    assert f"chiplet_0.fsa:{ffn + 6}: error: instruction {ffn} `ffn" in r.err and "reach this chiplet in this step" in r.err


# --- task-graph invariants on random routings ---------------------------------------------------

TARGETS = ["paper-2x2", "paper-4x4", "ring-8", "mesh-4x4"]


def _graphs(strategy: str, target_name: str, tokens: int, skew: str, seed: int, buffers: int = 4):
    target = resolve_target(target_name)
    spec = SPEC.moe[0]
    plan = auto_plan(spec, target, buffers)
    trace = synth_trace(SPEC, tokens, 2, target.num_chiplets, skew, 0.5, seed)
    graphs = plan_layer(strategy, spec, plan, target, Ring(target.ring), trace, 0, Options())
    return target, plan, trace, graphs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=st.sampled_from(list(BASELINES)), target=st.sampled_from(TARGETS),
       tokens=st.integers(1, 20), skew=st.sampled_from(["uniform", "zipf:1.5"]), seed=st.integers(0, 10_000))
def test_graph_invariants(strategy: str, target: str, tokens: int, skew: str, seed: int) -> None:
    t, plan, trace, graphs = _graphs(strategy, target, tokens, skew, seed)
    for step, graph in enumerate(graphs):
        experts, _ = trace.step(0, step)
        route = StepRoute.build(experts, trace.token_chiplet, plan)
        # every (token, expert, tile) computed exactly once
        done: Counter = Counter()
        for task in graph.tasks:
            if task.kind == FFN:
                for tok in task.tokens:
                    done[(tok, task.expert, task.shard)] += 1
        want = Counter({(tok, e, j): 1 for e in route.tokens for tok in route.all_tokens(e)
                        for j in range(plan.num_shards)})
        assert done == want
        tl = execute(graph, t.num_chiplets)
        # dependencies respected; no resource runs two tasks at once
        per_resource = defaultdict(list)
        for i, task in enumerate(graph.tasks):
            for d in task.deps:
                assert tl.start[i] >= tl.end[d] + graph.tasks[d].latency
            assert tl.end[i] - tl.start[i] == task.busy
            per_resource[task.resource].append((tl.start[i], tl.end[i]))
        for spans in per_resource.values():
            spans.sort()
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        assert tl.makespan >= lower_bound(graph)
        if strategy in ("ep", "tp", "dp"):  # B tile buffers: always within SRAM
            assert max(tl.peak_bytes) <= t.chiplet.sram_bytes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), tokens=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_fsdp_waits_on_an_experts_last_ffn_as_on_all(target: str, tokens: int, seed: int) -> None:
    """fsdp gates the reads and arrivals of an expert on the last FFN of the expert two back at
    each needing chiplet, not on all of them (`plan_fsdp`): exact because that FFN ends last; its
    FFNs wait on a join of the tiles, so its waits grow linearly in the tiles."""
    t, plan, trace, graphs = _graphs("fsdp", target, tokens, "zipf:1.0", seed)
    for graph in graphs:
        tl = execute(graph, t.num_chiplets)
        ffns = defaultdict(list)
        for i, task in enumerate(graph.tasks):
            if task.kind == FFN:
                ffns[(task.chiplet, task.expert)].append(i)
        for group in ffns.values():
            assert tl.end[group[-1]] == max(tl.end[i] for i in group)
        loads = [task for task in graph.tasks if task.kind == "load"]
        assert all(len(task.deps) <= t.num_chiplets for task in loads)
        # an FFN waits on one join of its expert's tile arrivals (on them directly for m <= 2)
        assert all(len(task.deps) <= 2 for task in graph.tasks if task.kind == FFN)


@settings(max_examples=15, deadline=None)
@given(target=st.sampled_from(TARGETS), tokens=st.integers(1, 24), seed=st.integers(0, 10_000))
def test_traffic_sanity(target: str, tokens: int, seed: int) -> None:
    for strategy in ("ep", "tp", "dp", "fsdp", "ep-serial"):
        t, plan, trace, graphs = _graphs(strategy, target, tokens, "zipf:1.0", seed)
        for step, graph in enumerate(graphs):
            experts, _ = trace.step(0, step)
            route = StepRoute.build(experts, trace.token_chiplet, plan)
            loads = Counter((task.expert, task.shard) for task in graph.tasks if task.kind == LOAD)
            if strategy == "ep":  # no weight crosses a D2D link; each tile read once, at its owner
                assert not any(task.kind == SEND for task in graph.tasks)
                assert all(task.chiplet == ep_owner(task.expert, t.dram_at)
                           for task in graph.tasks if task.kind == LOAD)
            if strategy in ("ep", "tp", "fsdp", "ep-serial"):  # each active tile read exactly once
                assert loads == Counter({(e, j): 1 for e in route.tokens for j in range(plan.num_shards)})
            if strategy == "dp":  # once per needing chiplet
                assert loads == Counter({(e, j): len(route.tokens[e]) for e in route.tokens
                                         for j in range(plan.num_shards)})
            if strategy == "fsdp":  # a tile crosses each directed link at most once
                hops = Counter((task.expert, task.shard, task.resource) for task in graph.tasks
                               if task.kind == SEND)
                assert all(v == 1 for v in hops.values())
            if strategy == "ep-serial":  # no overlap: an owner's next expert loads after its last FFN
                tl = execute(graph, t.num_chiplets)
                by_owner: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
                for i, task in enumerate(graph.tasks):
                    if task.kind in (LOAD, FFN):
                        by_owner[ep_owner(task.expert, t.dram_at)].append((task.expert, i, task.kind == FFN))
                for items in by_owner.values():
                    order = list(dict.fromkeys(e for e, _, _ in items))
                    for a, b in zip(order, order[1:]):
                        last_ffn = max(tl.end[i] for e, i, f in items if e == a and f)
                        first_load = min(tl.start[i] for e, i, f in items if e == b and not f)
                        assert first_load >= last_ffn


def test_tp_collectives_move_in_chunks(fsedpc, tmp_path: Path) -> None:
    """Large token groups cross each hop in chunks of CHUNK_TOKENS (pipelined), and the result
    is still exact."""
    from fsedp_compiler.baselines.collectives import CHUNK_TOKENS
    from fsedp_compiler.baselines.taskgraph import REDUCE, TOKSEND

    t, plan, trace, graphs = _graphs("tp", "paper-2x2", 160, "zipf:1.5", 2)
    token_bytes = SPEC.moe[0].d_model * 2
    sizes = Counter(task.nbytes for g in graphs for task in g.tasks if task.kind == TOKSEND)
    assert max(sizes) == CHUNK_TOKENS * token_bytes  # groups of > CHUNK_TOKENS tokens were split
    assert all(task.nbytes <= CHUNK_TOKENS * SPEC.moe[0].d_model * 4 for g in graphs for task in g.tasks
               if task.kind == REDUCE)
    path = tmp_path / "t.npz"
    save_trace(synth_trace(SPEC, 160, 1, 4, "zipf:1.5", 0.0, 2), str(path))
    code, err, metrics = compile_sim(fsedpc, tmp_path, "tp", "paper-2x2", path)
    assert code == 0, err


@pytest.mark.parametrize("target", ["paper-2x2", "ring-8", "mesh-4x4"])
def test_tp_gathers_and_reduces_each_token_once_per_step(target: str) -> None:
    """tp: every token reaches every other chiplet once per step (not once per expert), and its
    partial outputs cross N-1 hops once, summed over its experts; tp-per-expert moves each token
    once per active expert it is routed to."""
    from fsedp_compiler.baselines.taskgraph import REDUCE, TOKSEND
    from fsedp_compiler.isa import ALL_EXPERTS

    for strategy in ("tp", "tp-per-expert"):
        t, plan, trace, graphs = _graphs(strategy, target, 40, "zipf:1.0", 4)
        n = t.num_chiplets
        for step, graph in enumerate(graphs):
            experts, _ = trace.step(0, step)
            route = StepRoute.build(experts, trace.token_chiplet, plan)
            arrived: Counter = Counter()
            reduced: Counter = Counter()
            for task in graph.tasks:
                if task.kind not in (TOKSEND, REDUCE):
                    continue
                assert (task.expert == ALL_EXPERTS) == (strategy == "tp")
                owner = task.shard % n
                group = route.local[owner] if strategy == "tp" else route.tokens[task.expert][owner]
                for tok in group[task.row:task.row + task.rows]:
                    if task.kind == TOKSEND:
                        arrived[(tok, task.peer)] += 1
                    else:
                        reduced[tok] += 1
            for tok, c in enumerate(trace.token_chiplet.tolist()):
                k = 1 if strategy == "tp" else len(set(experts[tok].tolist()))
                assert all(arrived[(tok, d)] == k for d in range(n) if d != c)
                assert reduced[tok] == k * (n - 1)


def test_fsedp_reads_each_active_shard_once_and_fullring_visits_every_chiplet() -> None:
    from fsedp_compiler.costmodel import CostModel
    from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, schedule
    from fsedp_compiler.fsedp.streaming import trajectories

    for target_name in TARGETS:
        t = resolve_target(target_name)
        spec = SPEC.moe[0]
        plan = auto_plan(spec, t, 6)
        trace = synth_trace(SPEC, 12, 1, t.num_chiplets, "zipf:1.2", 0.0, 3)
        experts, weights = trace.step(0, 0)
        ring = Ring(t.ring)
        for rule in ("nearest", "fullring"):
            sched = schedule(StepRouting(experts, weights, trace.token_chiplet, 0, 0), plan, ring,
                             CostModel(t, spec.dtype), Policy("paired", "balanced", rule))
            trips = trajectories(sched, plan, ring, rule)
            active = {int(e) for e in np.unique(experts)}
            assert Counter((tr.expert, tr.shard) for tr in trips) == Counter(
                {(e, j): 1 for e in active for j in range(plan.num_shards)})
            if rule == "fullring":
                assert all(sorted(tr.path) == list(range(t.num_chiplets)) for tr in trips)


# --- fsedpc bench --------------------------------------------------------------------------------

BENCH_ARGS = ("--target", "paper-2x2", "--tokens", "8,32", "--steps", "2", "--strategies", "all", "--functional")


def test_bench_golden_json(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("bench", str(MODEL), *BENCH_ARGS, "--json", str(tmp_path / "b.json"))
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(GOLDEN_BENCH.read_text())
    assert "fsedp speedup" in r.out and "hydra" in r.out


def test_bench_rows_are_consistent(fsedpc, tmp_path: Path) -> None:
    report = json.loads(GOLDEN_BENCH.read_text())
    rows = report["rows"]
    assert {r["strategy"] for r in rows} >= set(BASELINES) | {"fsedp"}
    for r in rows:
        assert r["makespan_ns"] >= r["lower_bound_ns"] > 0
        assert 0 < r["efficiency"] <= 1
        assert r["exact"] is True
        assert len(r["sram_peak_bytes"]) == report["chiplets"]
        if r["strategy"] == "fsedp":
            assert r["speedup_of_fsedp"] == 1.0
    # every strategy runs the same routing: the same tokens and steps per row group
    assert len({(r["tokens"], r["steps"]) for r in rows}) == 2


def test_bench_csv_and_plot(fsedpc, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = fsedpc("bench", str(MODEL), "--target", "paper-2x2", "--tokens", "8", "--steps", "1",
               "--strategies", "ep,tp", "--csv", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"))
    assert r.code == 0, r.err
    lines = (tmp_path / "b.csv").read_text().splitlines()
    assert lines[0].startswith("strategy,tokens,steps,makespan_ns")
    assert [line.split(",")[0] for line in lines[1:]] == ["fsedp", "ep", "tp"]
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (("--strategies", "ep,nope"), "unknown strategy 'nope'"),
    (("--tokens", "8,x"), "expected comma-separated token counts"),
    (("--steps", "0"), "--steps: must be >= 1"),
    (("--moe-layers", "0"), "--moe-layers: must be >= 1"),
    (("--trace", str(TRACE), "--target", "ring-8"), "trace spreads tokens over 4 chiplets but ring-8 has 8"),
    (("--plot", "/nonexistent-dir/b.png"), "output directory does not exist: /nonexistent-dir"),
    (("--csv", "."), ".: error: is a directory; give a file name"),
])
def test_bench_errors(fsedpc, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = fsedpc("bench", str(MODEL), *args, "--json", str(tmp_path / "b.json"))
    assert r.code == 2
    assert message in r.err and "Traceback" not in r.err
    assert not (tmp_path / "b.json").exists()
