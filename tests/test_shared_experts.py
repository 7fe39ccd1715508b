"""Baselines on a model with shared experts: exact on the machine, equal to the estimator, and EP's
shared experts spread over every chiplet (tensor parallel) instead of one owner."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from fsedp_compiler.backends.emit import emit
from fsedp_compiler.baselines import BASELINES, Options, plan_layer
from fsedp_compiler.baselines.common import StepRoute, Topology
from fsedp_compiler.baselines.taskgraph import FFN, LOAD, TOKSEND
from fsedp_compiler.bench.runner import restrict_model
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import load_model_spec, make_context, module_from_spec
from fsedp_compiler.isa import ALL_EXPERTS
from fsedp_compiler.passes.shard_experts import auto_plan
from fsedp_compiler.pipeline.compile import compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.pipeline.estimate import estimate_module
from fsedp_compiler.sim.data import DataPlane
from fsedp_compiler.sim.loader import load_outdir
from fsedp_compiler.sim.run import simulate

REPO = Path(__file__).resolve().parent.parent
TINY = restrict_model(load_model_spec(str(REPO / "examples" / "models" / "tiny-moe.mlir")), 1, False, None)
#: tiny-moe with two shared experts of width 128 (half a routed expert)
SHARED = dataclasses.replace(TINY, moe=tuple(dataclasses.replace(m, num_shared=2, d_ffn_shared=128)
                                             for m in TINY.moe))


@pytest.mark.parametrize("target, strategies", [("paper-2x2", tuple(BASELINES)),
                                                 ("paper-4x4", ("ep", "ep-cache", "ep-serial", "hydra", "tp"))])
def test_baselines_are_exact_and_equal_the_estimator(target: str, strategies: tuple[str, ...], tmp_path: Path) -> None:
    """paper-4x4 has DRAM on its corners only: the other chiplets' slices travel from there."""
    trace = tmp_path / "t.npz"
    save_trace(synth_trace(SHARED, 12, 2, resolve_target(target).num_chiplets, "zipf:1.0", 0.5, 3), str(trace))
    for strategy in strategies:
        module = module_from_spec(SHARED)
        run_passes(make_context(), module, compile_passes(strategy, target=target, trace=str(trace), mode="static"))
        emit(module, str(tmp_path / strategy), strategy=strategy)
        loaded = load_outdir(str(tmp_path / strategy))
        metrics = simulate(loaded, data=DataPlane(loaded)).metrics
        assert metrics["functional"]["checked_layer_steps"] == 2, strategy
        assert metrics["makespan_ns"] == estimate_module(module).makespan, strategy


@pytest.mark.parametrize("strategy", ["ep", "ep-cache", "ep-serial", "hydra"])
@pytest.mark.parametrize("target", ["paper-2x2", "paper-4x4", "ring-8"])
def test_ep_spreads_shared_experts_over_every_chiplet(strategy: str, target: str) -> None:
    """Every chiplet computes its slice of each shared expert on every token (gathered once, no
    token sent to an owner for it); the slice is read once, where `tp` stores it."""
    t = resolve_target(target)
    n, spec = t.num_chiplets, SHARED.moe[0]
    plan = auto_plan(spec, t, 6)
    g = plan.num_shards // n
    stores = Topology(t).slice_stores
    trace = synth_trace(SHARED, 12, 2, n, "uniform", 0.0, 5)
    for step, graph in enumerate(plan_layer(strategy, spec, plan, t, Ring(t.ring), trace, 0, Options())):
        route = StepRoute.build(trace.step(0, step)[0], trace.token_chiplet, plan)
        tokens = tuple(range(len(trace.token_chiplet)))
        shared = range(spec.num_experts, spec.num_experts + spec.num_shared)
        for e in shared:
            ffns = [task for task in graph.tasks if task.kind == FFN and task.expert == e]
            assert sorted((task.chiplet, task.shard) for task in ffns) == [(c, j) for c in range(n)
                                                                           for j in range(c * g, (c + 1) * g)]
            assert all(task.tokens == tokens and task.sets for task in ffns)
            loads = [task for task in graph.tasks if task.kind == LOAD and task.expert == e]
            assert Counter((task.chiplet, task.shard) for task in loads) <= Counter(
                {(stores[j // g], j): 1 for j in range(plan.num_shards)})
            if strategy != "ep-cache" or step == 0:  # ep-cache keeps the DRAM chiplets' slices
                assert len(loads) == plan.num_shards
        sent = Counter((task.expert, task.peer) for task in graph.tasks if task.kind == TOKSEND)
        assert not any(e in shared for e, _ in sent)
        gathered = sum(task.rows for task in graph.tasks if task.kind == TOKSEND and task.expert == ALL_EXPERTS)
        assert gathered == sum(len(v) for v in route.local.values()) * (n - 1)


def test_ep_cache_keeps_the_shared_slices() -> None:
    """On a system with DRAM everywhere the shared slices are read once and stay cached."""
    t = resolve_target("ring-8")
    spec = SHARED.moe[0]
    plan = auto_plan(spec, t, 6)
    trace = synth_trace(SHARED, 8, 3, t.num_chiplets, "uniform", 0.0, 2)
    graphs = plan_layer("ep-cache", spec, plan, t, Ring(t.ring), trace, 0, Options())
    shared_loads = [sum(1 for task in g.tasks if task.kind == LOAD and task.expert >= spec.num_experts)
                    for g in graphs]
    assert shared_loads == [spec.num_shared * plan.num_shards, 0, 0]
    slices = spec.num_shared * plan.num_shards // t.num_chiplets * plan.shard_bytes(spec.num_experts)
    assert all(held >= slices for g in graphs[1:] for held in g.resident)
