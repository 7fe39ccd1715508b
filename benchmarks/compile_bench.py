"""Compiler benchmarks (not tests): scheduler time per layer-step and whole-compile wall times.

    .venv/bin/python benchmarks/compile_bench.py [--steps 32] [--json FILE]

1. `scheduler.schedule` per layer-step for Mixtral-8x7B on ring-8 and DeepSeek-V3 on mesh-4x4
   at 1-64 tokens (synthetic Zipf 0.6 routing, locality 0.3), with the active experts A.
2. `fsedpc compile` wall time: DeepSeek-V3 in dynamic mode (61 blocks, 16 chiplets) and in
   static mode (64 tokens x 4 steps on mesh-4x4, synthetic Zipf 0.6 routing, locality 0.3, seed 1),
   Mixtral-8x7B in static mode (32 layers x 64 steps x 16 tokens on ring-8).
All times are measured in this one run on this machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import StepRouting, schedule
from fsedp_compiler.inputs.target_files import load_preset
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import load_model_spec
from fsedp_compiler.passes.shard_experts import auto_plan

REPO = Path(__file__).resolve().parent.parent
CASES = (("mixtral-8x7b", "ring-8"), ("deepseek-v3", "mesh-4x4"))
TOKENS = (1, 4, 16, 64)


def scheduler_rows(steps: int) -> list[dict]:
    rows = []
    for model_name, target_name in CASES:
        model = load_model_spec(str(REPO / "examples" / "models" / f"{model_name}.mlir"))
        target = load_preset(target_name)
        layer = model.moe[0]
        plan = auto_plan(layer, target, 6)
        ring, cost = Ring(target.ring), CostModel(target, layer.dtype)
        one_layer = type(model)(model.name, model.num_layers, model.dense, model.moe[:1])
        for tokens in TOKENS:
            trace = synth_trace(one_layer, tokens, steps, target.num_chiplets, "zipf:0.6", 0.3, 1)
            routings = [StepRouting(trace.experts[0, s], trace.weights[0, s], trace.token_chiplet, layer.index, s)
                        for s in range(steps)]
            schedule(routings[0], plan, ring, cost)  # warm caches
            start = time.perf_counter()
            scheds = [schedule(r, plan, ring, cost) for r in routings]
            elapsed = time.perf_counter() - start
            rows.append({"model": model_name, "target": target_name, "tokens": tokens, "shards": plan.num_shards,
                         "active_experts": sum(len(s.streams) for s in scheds) / steps,
                         "us_per_layer_step": 1e6 * elapsed / steps})
    return rows


def compile_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fsedp_compiler.cli", "compile", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32, help="layer-steps timed per case")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    console = Console()
    rows = scheduler_rows(args.steps)
    table = Table(title="lightweight scheduler, per layer-step (first MoE layer)")
    for col in ("model", "target", "tokens", "shards M", "active A", "us / layer-step"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["model"], r["target"], str(r["tokens"]), str(r["shards"]), f"{r['active_experts']:.1f}",
                      f"{r['us_per_layer_step']:.0f}")
    console.print(table)
    with tempfile.TemporaryDirectory() as tmp:
        mix = REPO / "examples" / "models" / "mixtral-8x7b.mlir"
        trace = synth_trace(load_model_spec(str(mix)), 16, 64, 8, "zipf:0.4", 0.3, 1)
        save_trace(trace, f"{tmp}/mix.npz")
        ds3 = REPO / "examples" / "models" / "deepseek-v3.mlir"
        save_trace(synth_trace(load_model_spec(str(ds3)), 64, 4, 16, "zipf:0.6", 0.3, 1), f"{tmp}/ds3.npz")
        compiles = {
            "deepseek-v3 dynamic, mesh-4x4": compile_time(
                [str(REPO / "examples/models/deepseek-v3.mlir"), "--target", "mesh-4x4", "-o", f"{tmp}/ds3"]),
            "deepseek-v3 static, mesh-4x4, 64 tokens x 4 steps": compile_time(
                [str(ds3), "--target", "mesh-4x4", "--trace", f"{tmp}/ds3.npz", "-o", f"{tmp}/ds3s"]),
            "mixtral-8x7b static, ring-8, 32 layers x 64 steps x 16 tokens": compile_time(
                [str(mix), "--target", "ring-8", "--trace", f"{tmp}/mix.npz", "-o", f"{tmp}/mix"]),
        }
    for name, seconds in compiles.items():
        console.print(f"fsedpc compile {name}: {seconds:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"scheduler": rows, "compile_s": compiles}, indent=2) + "\n")


if __name__ == "__main__":
    main()
