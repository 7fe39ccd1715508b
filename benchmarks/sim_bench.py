"""Machine speed and memory (not a test): simulated element-ops per second and peak RSS.

    .venv/bin/python benchmarks/sim_bench.py [--quick] [--json FILE]

Each case runs in its own process (so its peak RSS is its own): compile, then time the run of the
emitted program only. An element-op is a shard load, send or FFN (FSE-DP) or a task (baselines).

1. Mixtral-8x7B, all 32 layers, 8 steps of 16 tokens on ring-8, static;
2. DeepSeek-V3, all 61 blocks (58 MoE), 4 steps of 64 tokens on mesh-4x4, dynamic (the
   controller schedules every layer step);
3. one MoE layer of DeepSeek-MoE-16B at 256 tokens on paper-2x2 (the FSE-DP authors' simulator
   takes 2-28 s for such one-layer runs).

`--quick` cuts the first two to 4 and 6 blocks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASES = [
    ("mixtral-8x7b", "mixtral-8x7b.json", 32, 16, 8, "ring-8", 8, "static"),
    ("deepseek-v3", "deepseek-v3.json", 61, 64, 4, "mesh-4x4", 16, "dynamic"),
    ("deepseek-moe-16b-1layer", "deepseek-moe-16b.json", 2, 256, 1, "paper-2x2", 4, "static"),
]

_CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
from fsedp_compiler.cli import main as fsedpc
from fsedp_compiler.inputs.hf_import import import_hf_config
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import load_trace, save_trace
from fsedp_compiler.ir.modules import module_text_from_spec
from fsedp_compiler.sim.loader import load_outdir
from fsedp_compiler.sim.run import simulate
name, config, layers, tokens, steps, target, chiplets, mode = json.loads(sys.argv[1])
tmp = Path(tempfile.mkdtemp())
spec = import_hf_config(str(Path(sys.argv[2]) / "examples" / "hf" / config), layers)
(tmp / "m.mlir").write_text(module_text_from_spec(spec))
save_trace(synth_trace(spec, tokens, steps, chiplets, "zipf:0.4", 0.3, 1), str(tmp / "t.npz"))
args = ["compile", str(tmp / "m.mlir"), "--target", target, "-o", str(tmp / "o")]
if mode == "static":
    args += ["--trace", str(tmp / "t.npz")]
assert fsedpc(args) == 0
loaded = load_outdir(str(tmp / "o"))
trace = load_trace(str(tmp / "t.npz")) if mode == "dynamic" else None
start = time.perf_counter()
m = simulate(loaded, trace, keep_ops=False).metrics
wall = time.perf_counter() - start
print(json.dumps({"case": name, "target": target, "mode": mode, "blocks": layers, "steps": steps, "tokens": tokens,
                  "ops": m["sim_events"], "wall_s": round(wall, 2), "ops_per_s": round(m["sim_events"] / wall),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "makespan_ns": m["makespan_ns"]}))
"""


def run_case(case: tuple, python: str = sys.executable) -> dict:
    """One case in a child process (compile output silenced); its result row."""
    r = subprocess.run([python, "-c", _CHILD, json.dumps(case), str(REPO)], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 6 blocks for the first two cases")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to run (another checkout's venv, for before/after ratios)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rows = []
    for case in CASES:
        if args.quick and case[2] > 2:
            case = (case[0], case[1], 4 if case[0].startswith("mixtral") else 6, *case[3:])
        row = run_case(case, args.python)
        rows.append(row)
        print(f"{row['case']} ({row['blocks']} blocks, {row['steps']} steps x {row['tokens']} tokens, {row['target']}, "
              f"{row['mode']}): {row['ops']:,} ops in {row['wall_s']:.2f} s = {row['ops_per_s']:,} ops/s, "
              f"peak RSS {row['peak_rss_mb']} MB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
