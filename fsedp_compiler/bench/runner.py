"""Strategy comparison: compile and simulate every strategy on the same traces, one row each.

Every row goes through the real tool chain (passes, ISA emission, program loading, the
simulator), so the comparison runs on one backend and one cost model. Ratios are measured in
one run: FSE-DP's speedup over a strategy is that strategy's makespan over FSE-DP's on the same
routing; the SRAM saving is 1 - FSE-DP's peak / the strategy's peak (the most any chiplet holds).
Each row names the resource that binds it (`compare.binding`); per token count the report names
the best strong baseline among the plans that fit SRAM (`compare.strong_summary`). `auto` is a
row like the others: the program `--strategy auto` compiles, and what it chose (`chosen`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import RoutingTrace, load_trace, save_trace
from fsedp_compiler.pipeline.compare import binding, strong_summary

#: Row fields written by `--json` (besides the breakdowns), in table order.
ROW_KEYS = ("strategy", "tokens", "steps", "makespan_ns", "step_ns", "lower_bound_ns", "efficiency", "dram_bytes",
            "d2d_bytes", "sram_peak_bytes", "sram_fits", "energy_pj", "speedup_of_fsedp", "sram_saving_of_fsedp",
            "engine_busy", "max_busy", "bottleneck", "binds", "exact", "chosen", "sched_estimate")


@dataclass(frozen=True)
class BenchConfig:
    """What to compare: model blocks, target, token counts, strategies and the routing."""

    model: ModelSpec
    target: str
    tokens: tuple[int, ...]
    strategies: tuple[str, ...]
    steps: int = 4
    trace: str | None = None
    skew: str = "uniform"
    locality: float = 0.0
    seed: int = 0
    buffers: int = 0
    shards_per_chiplet: int = 0
    functional: bool = False
    hydra_skip_single: bool = False


def restrict_model(model: ModelSpec, moe_layers: int | Sequence[int] | None, dense: bool,
                   dtype: str | None) -> ModelSpec:
    """The first `moe_layers` MoE layers, or those with the given block indices (a sequence), and
    the blocks before the last one kept; without the dense parts when `dense` is false, at `dtype`
    when given."""
    moe = model.moe
    if isinstance(moe_layers, int):
        if moe_layers < 1:
            raise FsedpError(f"must be >= 1, got {moe_layers}", field="--moe-layers")
        moe = moe[:moe_layers]
    elif moe_layers is not None:
        known = {m.index for m in model.moe}
        if missing := [i for i in moe_layers if i not in known]:
            raise FsedpError(f"block {missing[0]} has no MoE layer; MoE layers are at {sorted(known)}",
                             field="moe_layers")
        moe = tuple(m for m in model.moe if m.index in set(moe_layers))
    if not moe:
        raise FsedpError("the model has no MoE layer to compare strategies on", field="MODEL.mlir")
    last = moe[-1].index
    kept = tuple(d for d in model.dense if d.index <= last) if dense else ()
    if dtype is not None:
        moe = tuple(dataclasses.replace(m, dtype=dtype) for m in moe)
    return dataclasses.replace(model, moe=tuple(moe), dense=kept)


def _engine_kind(engine: str) -> str:
    """metrics.json engine names (dma0, link->3, compute) by kind."""
    return "dram" if engine.startswith("dma") else "link" if engine.startswith("link") else "compute"


def engine_busy(metrics: dict[str, Any]) -> dict[str, float]:
    """Mean busy fraction over chiplets of DRAM, link and compute engines (sums over units)."""
    out = {"dram": 0.0, "link": 0.0, "compute": 0.0}
    per = metrics["busy"]
    for chiplet in per:
        for engine, frac in chiplet.items():
            out[_engine_kind(engine)] += frac
    return {k: round(v / max(len(per), 1), 6) for k, v in out.items()}


def max_busy(metrics: dict[str, Any]) -> dict[str, float]:
    """Busy fraction of the busiest single DRAM channel, directed link and compute engine."""
    out = {"dram": 0.0, "link": 0.0, "compute": 0.0}
    for chiplet in metrics["busy"]:
        for engine, frac in chiplet.items():
            out[_engine_kind(engine)] = max(out[_engine_kind(engine)], frac)
    return out


def trace_for(cfg: BenchConfig, tokens: int, chiplets: int, workdir: str) -> str:
    """The routing trace file of `tokens`: `cfg.trace`, or one synthesised into `workdir`."""
    if cfg.trace:
        return cfg.trace
    path = os.path.join(workdir, f"trace-{tokens}.npz")
    save_trace(synth_trace(cfg.model, tokens, cfg.steps, chiplets, cfg.skew, cfg.locality, cfg.seed), path)
    return path


def run_one(cfg: BenchConfig, strategy: str, trace_path: str, trace: RoutingTrace, outdir: str) -> dict[str, Any]:
    """Compile `strategy` for the trace into `outdir`, simulate it; the row (without ratios)."""
    from fsedp_compiler.backends.emit import emit
    from fsedp_compiler.ir.modules import make_context, module_from_spec
    from fsedp_compiler.pipeline.compile import compile_auto, compile_passes
    from fsedp_compiler.pipeline.driver import run_passes, verify_each_default
    from fsedp_compiler.sim.loader import load_outdir
    from fsedp_compiler.sim.run import simulate
    from fsedp_compiler.strategies import AUTO

    module = module_from_spec(cfg.model)
    chosen, layer_strategies = None, None
    if strategy == AUTO:
        build = compile_auto(make_context(), module, target=cfg.target, trace=trace_path, mode="static",
                             shards_per_chiplet=cfg.shards_per_chiplet, buffers=cfg.buffers,
                             verify_each=verify_each_default())
        module, layer_strategies = build.module, build.layer_strategies
        chosen = build.chosen
    else:
        passes = compile_passes(strategy, target=cfg.target, trace=trace_path, mode="static",
                                shards_per_chiplet=cfg.shards_per_chiplet, buffers=cfg.buffers,
                                hydra_skip_single=cfg.hydra_skip_single and strategy == "hydra")
        run_passes(make_context(), module, passes, verify_each=verify_each_default())
    emit(module, outdir, strategy=strategy, layer_strategies=layer_strategies)
    loaded = load_outdir(outdir)
    data = None
    if cfg.functional:  # the data plane (and the reference) only when asked for
        from fsedp_compiler.sim.data import DataPlane

        data = DataPlane(loaded, strict=False)
    m = simulate(loaded, data=data).metrics
    exact = m["functional"]["exact"] if cfg.functional else None
    peaks = max_busy(m)
    estimated = scheduler_estimates(module)
    return {
        "strategy": strategy, "tokens": m["tokens"], "steps": m["steps"], "makespan_ns": m["makespan_ns"],
        "step_ns": m["makespan_ns"] / max(m["steps"], 1), "lower_bound_ns": m["lower_bound_ns"],
        "efficiency": round(m["efficiency"], 6), "dram_bytes": m["dram_bytes"], "d2d_bytes": m["d2d_bytes"],
        "sram_peak_bytes": m["sram_peak_bytes"], "sram_fits": m["sram_fits"],
        "energy_pj": m["energy_pj"]["total"], "engine_busy": engine_busy(m), "max_busy": peaks,
        "bottleneck": max(peaks, key=lambda k: peaks[k]), "binds": binding(peaks), "exact": exact, "chosen": chosen,
        "sched_estimate": estimate_ratio(estimated, m),
    }


def scheduler_estimates(module: Any) -> dict[int, int]:
    """The scheduler's own step-time estimates (the schedule ops' `estimated_ns`), summed over the
    steps, per FSE-DP MoE layer of a static module (baseline layers have none)."""
    from fsedp_compiler.dialects.fsedp import StaticScheduleOp
    from fsedp_compiler.ir.layers import layer_contexts

    return {c.spec.index: int(c.schedule_op.prop_array("estimated_ns").sum())
            for c in layer_contexts(module) if isinstance(c.schedule_op, StaticScheduleOp)}


def estimate_ratio(estimated: dict[int, int], metrics: dict[str, Any]) -> float | None:
    """The scheduler's estimate / the simulated time of the same FSE-DP layers (None: no such layer)."""
    simulated = sum(ns for index, ns in zip(metrics["layers"], metrics["per_layer_ns"]) if index in estimated)
    return round(sum(estimated.values()) / simulated, 6) if estimated and simulated else None


def run_point(cfg: BenchConfig, tokens: int, strategy: str, workdir: str) -> dict[str, Any]:
    """One (tokens, strategy) row of `run_bench` without its ratios, computed alone (a sweep point):
    the same routing (synthesised from the same seed) and the same tool chain give the same row."""
    from fsedp_compiler.inputs.target_files import resolve_target

    trace_path = trace_for(cfg, tokens, resolve_target(cfg.target).num_chiplets, workdir)
    return run_one(cfg, strategy, trace_path, load_trace(trace_path), os.path.join(workdir, f"{strategy}-{tokens}"))


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speedup and SRAM saving of fsedp over every row with the same token count."""
    ref = {r["tokens"]: r for r in rows if r["strategy"] == "fsedp"}
    for r in rows:
        f = ref.get(r["tokens"])
        r["speedup_of_fsedp"] = round(r["makespan_ns"] / f["makespan_ns"], 6) if f and f["makespan_ns"] else None
        peak, fpeak = max(r["sram_peak_bytes"]), max(f["sram_peak_bytes"]) if f else 0
        r["sram_saving_of_fsedp"] = round(1 - fpeak / peak, 6) if f and peak else None


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every (tokens, strategy) row; `progress(label)` is called before each run."""
    from fsedp_compiler.inputs.target_files import resolve_target

    target = resolve_target(cfg.target)
    if cfg.trace:
        trace = load_trace(cfg.trace, cfg.model)
        if trace.num_chiplets != target.num_chiplets:
            raise FsedpError(f"trace spreads tokens over {trace.num_chiplets} chiplets but {target.name} has "
                             f"{target.num_chiplets}", path=cfg.trace, field="--trace")
        token_counts: tuple[int, ...] = (trace.num_tokens,)
    else:
        token_counts = cfg.tokens
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fsedpc-bench-") as work:
        for tokens in token_counts:
            trace_path = trace_for(cfg, tokens, target.num_chiplets, work)
            routing = load_trace(trace_path)  # once for every strategy run on it
            for strategy in cfg.strategies:
                if progress is not None:
                    progress(f"{strategy} @ {tokens} tokens")
                rows.append(run_one(cfg, strategy, trace_path, routing, os.path.join(work, f"{strategy}-{tokens}")))
    add_ratios(rows)
    rows = [{k: r[k] for k in ROW_KEYS} for r in rows]
    return {
        "format": "fsedpc-bench", "version": 1, "model": cfg.model.name, "target": target.name,
        "chiplets": target.num_chiplets, "moe_layers": [m.index for m in cfg.model.moe],
        "dtype": cfg.model.moe[0].dtype, "dense": bool(cfg.model.dense),
        "routing": ({"trace": os.path.basename(cfg.trace)} if cfg.trace else
                    {"skew": cfg.skew, "locality": cfg.locality, "seed": cfg.seed, "steps": cfg.steps}),
        "buffers": cfg.buffers, "sram_capacity_bytes": target.chiplet.sram_bytes, "rows": rows,
        "best_strong": strong_summary(rows, target.chiplet.sram_bytes),
    }
