"""The machine (which executes the emitted instructions) against the compiler's estimator (which
times the compiler's own plan): equal on every strategy and preset; static against dynamic; and
the machine's independence from the compiler."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fsedp_compiler.backends.emit import emit
from fsedp_compiler.baselines import BASELINES
from fsedp_compiler.bench.runner import restrict_model
from fsedp_compiler.inputs.target_files import resolve_target
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import load_trace, save_trace
from fsedp_compiler.ir.modules import load_model_spec, make_context, module_from_spec
from fsedp_compiler.pipeline.compile import STRATEGIES, compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.pipeline.estimate import estimate_module
from fsedp_compiler.sim.data import DataPlane
from fsedp_compiler.sim.loader import load_outdir
from fsedp_compiler.sim.run import simulate

REPO = Path(__file__).resolve().parent.parent
SPEC = restrict_model(load_model_spec(str(REPO / "examples" / "models" / "tiny-moe.mlir")), 1, True, None)
PRESETS = ["paper-2x2", "paper-4x4", "ring-8", "mesh-4x4", "torus-4x4", "hbm-8"]
ROUTINGS = {"paper-2x2": [("uniform", 8), ("zipf:1.2", 16)], "ring-8": [("uniform", 12), ("zipf:0.8", 24)]}


def build(tmp: Path, strategy: str, target: str, trace: Path | None, name: str):
    module = module_from_spec(SPEC)
    passes = compile_passes(strategy, target=target, trace=str(trace) if trace else None,
                            mode="static" if trace else "dynamic", buffers=6)
    run_passes(make_context(), module, passes)
    out = tmp / name
    emit(module, str(out), strategy=strategy)
    return module, out


@pytest.mark.parametrize("target", PRESETS)
def test_machine_equals_estimator_on_every_strategy(target: str, tmp_path: Path) -> None:
    """Exactly equal makespans, static for every strategy, dynamic for FSE-DP and its ablations;
    functional too for FSE-DP and the strong baselines."""
    n = resolve_target(target).num_chiplets
    for k, (skew, tokens) in enumerate(ROUTINGS.get(target, [("zipf:0.7", 12)])):
        path = tmp_path / f"t{k}.npz"
        save_trace(synth_trace(SPEC, tokens, 3, n, skew, 0.3, 7 + k), str(path))
        trace = load_trace(str(path))
        for strategy in (*STRATEGIES, *BASELINES):
            module, out = build(tmp_path, strategy, target, path, f"{strategy}-{k}")
            loaded = load_outdir(str(out))
            functional = strategy in ("fsedp", "ep", "tp", "fsdp") and k == 0
            machine = simulate(loaded, data=DataPlane(loaded) if functional else None).metrics
            assert machine["makespan_ns"] == estimate_module(module).makespan, (target, strategy, skew)
            assert machine["makespan_ns"] >= machine["lower_bound_ns"] > 0
            if strategy in STRATEGIES:
                module, out = build(tmp_path, strategy, target, None, f"{strategy}-{k}-dyn")
                dynamic = simulate(load_outdir(str(out)), trace).metrics
                assert dynamic["makespan_ns"] == estimate_module(module, trace).makespan, (target, strategy, "dyn")
                assert dynamic["makespan_ns"] >= dynamic["lower_bound_ns"]  # the ring-aware bound holds


def test_static_and_dynamic_runs_do_the_same_work(tmp_path: Path) -> None:
    """Per MoE step the dynamic template, run by the controller against the scheduler's table,
    gives the engines exactly the work of the static ranges; only the controller's latency differs."""
    from fsedp_compiler.costmodel import CostModel
    from fsedp_compiler.fsedp.ring import Ring
    from fsedp_compiler.fsedp.scheduler import StepRouting, schedule
    from fsedp_compiler.sim.firmware import decode_dynamic
    from fsedp_compiler.sim.steps import Routing, decode_stream, split_phases
    from fsedp_compiler.sim.stream_engine import StreamStep
    from fsedp_compiler.sim.trajectory import Trajectories

    path = tmp_path / "t.npz"
    save_trace(synth_trace(SPEC, 16, 3, 8, "zipf:0.9", 0.3, 5), str(path))
    trace = load_trace(str(path))
    _, static_dir = build(tmp_path, "fsedp", "ring-8", path, "static")
    _, dynamic_dir = build(tmp_path, "fsedp", "ring-8", None, "dynamic")
    static, dynamic = load_outdir(str(static_dir)), load_outdir(str(dynamic_dir))
    dyn_phases = {p.layer: p for p in split_phases(dynamic) if p.kind == "dynamic"}
    trajs = [Trajectories(r) for r in dynamic.rings]
    latency = 0
    compared = 0
    fields = [f.name for f in dataclasses.fields(StreamStep) if f.name not in ("where", "error")]
    for phase in split_phases(static):
        if phase.kind != "stream":
            continue
        layer = static.layers[phase.layer]
        pos = trace.layer_indices.index(phase.layer)
        routing = Routing.of(*trace.step(pos, phase.step), trace.token_chiplet, layer, 8)
        a = decode_stream(static, phase, routing)
        b, ns = decode_dynamic(dynamic, dyn_phases[phase.layer], routing, phase.step, trajs)
        for name in fields:
            assert getattr(a, name) == getattr(b, name), (phase.layer, phase.step, name)
        sched = schedule(StepRouting(*trace.step(pos, phase.step), trace.token_chiplet, phase.layer, phase.step),
                         layer.plan, Ring(static.target.ring), CostModel(static.target), layer.policy)
        assert ns == CostModel(static.target).scheduler_ns(len(sched.streams))
        latency += ns
        compared += 1
    assert compared == 3
    assert simulate(dynamic, trace).metrics["makespan_ns"] - simulate(static).metrics["makespan_ns"] == latency


def test_simulator_imports_no_compiler_internals() -> None:
    """`import fsedp_compiler.sim` (and running it) loads no pass, dialect, baseline planner,
    trajectory code or xDSL module; the import stays fast."""
    code = ("import sys, time; t = time.perf_counter(); import fsedp_compiler.sim.run, fsedp_compiler.sim.data, "
            "fsedp_compiler.sim.timeline, fsedp_compiler.sim.loader; ms = (time.perf_counter() - t) * 1e3; "
            "import json; print(json.dumps([ms, sorted(sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ms, modules = json.loads(out)
    forbidden = [m for m in modules if m.split(".")[0] == "xdsl" or m.startswith((
        "fsedp_compiler.passes", "fsedp_compiler.dialects", "fsedp_compiler.baselines", "fsedp_compiler.backends",
        "fsedp_compiler.fsedp.streaming", "fsedp_compiler.baselines.taskgraph", "fsedp_compiler.pipeline.estimate", "fsedp_compiler.ir.modules",
        "fsedp_compiler.ir.layers", "networkx"))]
    assert forbidden == []
    assert ms < 5000  # a sanity ceiling, not a benchmark (the README reports the measured figure)



def test_the_targets_cost_knobs_reach_the_estimator_and_the_machine(tmp_path: Path) -> None:
    """A target's [cost] table (min_tokens, op_overhead_ns) slows FFN ops for the compiler's
    estimator and the machine alike: program.json carries it, and the two stay equal."""
    base = (REPO / "examples" / "targets" / "paper-2x2.toml").read_text()
    toml = tmp_path / "slow-array.toml"
    toml.write_text(base.replace('name = "paper-2x2"', 'name = "slow-array"')
                    + "\n[cost]\nmin_tokens = 64\nop_overhead_ns = 500\n")
    path = tmp_path / "t.npz"
    save_trace(synth_trace(SPEC, 8, 2, 4, "uniform", 0.0, 3), str(path))
    times = {}
    for target in ("paper-2x2", str(toml)):
        module, out = build(tmp_path, "fsedp", target, path, Path(target).stem)
        manifest = json.loads((out / "program.json").read_text())
        loaded = load_outdir(str(out))
        machine = simulate(loaded).metrics["makespan_ns"]
        assert machine == estimate_module(module).makespan
        times[target] = (machine, manifest["target"].get("cost"))
    assert times["paper-2x2"][1] is None  # defaults leave program.json as it was
    assert times[str(toml)][1] == {"min_tokens": 64, "op_overhead_ns": 500, "scheduler_ns_per_expert": 2}
    assert times[str(toml)][0] > times["paper-2x2"][0]
