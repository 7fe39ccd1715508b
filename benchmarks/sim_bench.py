"""Simulator speed (not a test): simulated ops per second and wall time of two runs.

    .venv/bin/python benchmarks/sim_bench.py [--quick] [--json FILE]

1. one MoE layer of DeepSeek-MoE-16B at 256 tokens on paper-2x2 (the FSE-DP authors' simulator
   takes 2-28 s for such one-layer runs and models no link contention; ours does);
2. Mixtral-8x7B, 32 layers, 16 decode steps of 16 tokens on ring-8, timing mode (with --quick:
   4 layers, so a sweep can estimate the per-op cost quickly).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from fsedp_compiler.cli import main as fsedpc
from fsedp_compiler.hf_import import import_hf_config
from fsedp_compiler.ir import module_text_from_spec
from fsedp_compiler.routing import save_trace, synth_trace
from fsedp_compiler.sim.loader import load_outdir
from fsedp_compiler.sim.run import simulate

REPO = Path(__file__).resolve().parent.parent


def run_case(tmp: Path, name: str, config: str, layers: int, tokens: int, steps: int, target: str, chiplets: int) -> dict:
    spec = import_hf_config(str(REPO / "examples" / "hf" / config), layers)
    (tmp / f"{name}.mlir").write_text(module_text_from_spec(spec))
    save_trace(synth_trace(spec, tokens, steps, chiplets, "zipf:0.4", 0.3, 1), str(tmp / f"{name}.npz"))
    assert fsedpc(["compile", str(tmp / f"{name}.mlir"), "--target", target, "--trace", str(tmp / f"{name}.npz"),
                   "-o", str(tmp / name)]) == 0
    loaded = load_outdir(str(tmp / name))
    start = time.perf_counter()
    result = simulate(loaded, None, keep_ops=False)
    wall = time.perf_counter() - start
    ops = result.metrics["sim_events"]
    return {"case": name, "target": target, "moe_layers": len(spec.moe), "steps": steps, "tokens": tokens,
            "ops": ops, "wall_s": round(wall, 3), "ops_per_s": round(ops / wall),
            "simulated_ms": result.metrics["makespan_ns"] / 1e6, "efficiency": round(result.metrics["efficiency"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Mixtral with 4 layers instead of 32")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(Path(tmp), "deepseek-moe-16b-1layer", "deepseek-moe-16b.json", 2, 256, 1, "paper-2x2", 4),
                run_case(Path(tmp), "mixtral-8x7b", "mixtral-8x7b.json", 4 if args.quick else 32, 16, 16, "ring-8", 8)]
    for r in rows:
        console.print(f"{r['case']} ({r['moe_layers']} MoE layers x {r['steps']} steps x {r['tokens']} tokens on "
                      f"{r['target']}): {r['ops']:,} ops in {r['wall_s']:.2f} s = {r['ops_per_s']:,} ops/s; "
                      f"simulated {r['simulated_ms']:.2f} ms at {r['efficiency']:.1%} of the lower bound")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
