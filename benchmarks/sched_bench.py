"""Scheduler speed (not a test): per-call time of `scheduler.schedule` against chiplets and tokens.

    .venv/bin/python benchmarks/sched_bench.py [--chiplets 4,8,...] [--tokens 1,16,...] [--json FILE]

For the first MoE layer of Mixtral-8x7B and of DeepSeek-V3, on rings of N chiplets (the ring-8
preset's chiplet and links, DRAM on every chiplet), with the shard plan `shard-experts` picks
(smallest g that divides F and fits 6 shard buffers) and synthetic decode routing (Zipf 0.6,
locality 0.3, seeded), it prints the mean time of one `schedule()` call per (N, tokens), the
fitted growth exponent in N (log-log least squares over N = 16..128) and the issue-17 targets.
A checksum of every schedule (digest, estimate, bounds) lets two versions be compared for
identical results. Only public APIs that predate the fast scheduler are used, so the same
script measures an older checkout (run it with that checkout's interpreter).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import StepRouting, schedule
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.target_files import load_preset
from fsedp_compiler.inputs.topology import topology_edges
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.ir.modules import load_model_spec
from fsedp_compiler.passes.shard_experts import auto_plan

REPO = Path(__file__).resolve().parent.parent
MODELS = ("mixtral-8x7b", "deepseek-v3")
CHIPLETS = (4, 8, 16, 32, 64, 128)
TOKENS = (1, 16, 256, 4096)
FIT_RANGE = (16, 128)
#: (model, chiplets, tokens, limit in µs per call) from issue 17
TARGETS = (("mixtral-8x7b", 8, 16, 100.0), ("deepseek-v3", 16, 64, 2000.0))
MAX_EXPONENT = 1.2


def ring_target(n: int) -> Target:
    """A ring of n chiplets with the ring-8 preset's chiplet and links, DRAM on every chiplet."""
    base = load_preset("ring-8")
    return dataclasses.replace(base, name=f"ring-{n}", num_chiplets=n, topology="ring",
                               edges=topology_edges("ring", n), dram_at=tuple(range(n)), ring=tuple(range(n)))


def one_layer(name: str) -> ModelSpec:
    """The example model `name` cut to its first MoE layer."""
    model = load_model_spec(str(REPO / "examples" / "models" / f"{name}.mlir"))
    return dataclasses.replace(model, name=name, moe=model.moe[:1], dense=())


def time_cell(model: ModelSpec, n: int, tokens: int, steps: int, min_time: float) -> dict:
    """Wall time of one schedule() call: the mean over `steps` routed steps, best of the passes
    made in `min_time` (robust to other processes; the JSON keeps the median pass too)."""
    layer = model.moe[0]
    target = ring_target(n)
    plan = auto_plan(layer, target, 6)
    ring, cost = Ring(target.ring), CostModel(target, layer.dtype)
    trace = synth_trace(model, tokens, steps, n, "zipf:0.6", 0.3, 1)
    routings = [StepRouting(trace.experts[0, s], trace.weights[0, s], trace.token_chiplet, layer.index, s)
                for s in range(steps)]
    scheds = [schedule(r, plan, ring, cost) for r in routings[:1]]  # warm caches; checked below
    passes: list[float] = []  # mean seconds per call of each pass over the steps
    gc.collect()
    while not passes or sum(passes) * len(routings) < min_time:
        start = time.perf_counter()
        for r in routings:
            sched = schedule(r, plan, ring, cost)
            if not passes:
                scheds.append(sched)
        passes.append((time.perf_counter() - start) / len(routings))
    h = hashlib.sha256()
    for s in scheds[1:]:
        h.update(f"{s.digest()},{s.estimated_ns},{s.bounds};".encode())
    return {"model": model.name, "chiplets": n, "tokens": tokens, "shards": plan.num_shards,
            "active": float(np.mean([len(s.streams) for s in scheds[1:]])),
            "calls": len(passes) * len(routings), "us_per_call": 1e6 * min(passes),
            "us_per_call_median": 1e6 * float(np.median(passes)),
            "checksum": h.hexdigest()[:12], "checked_steps": len(scheds) - 1}


def growth_exponent(rows: list[dict], lo: int, hi: int) -> float | None:
    """Least-squares slope of log(time) against log(N) over lo <= N <= hi."""
    pts = [(math.log(r["chiplets"]), math.log(r["us_per_call"])) for r in rows if lo <= r["chiplets"] <= hi]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chiplets", default=",".join(map(str, CHIPLETS)))
    parser.add_argument("--tokens", default=",".join(map(str, TOKENS)))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=8, help="distinct routed steps per cell")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of schedule() calls per cell")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    chiplets = [int(v) for v in args.chiplets.split(",")]
    tokens_list = [int(v) for v in args.tokens.split(",")]
    rows: list[dict] = []
    for name in args.models.split(","):
        model = one_layer(name)
        layer = model.moe[0]
        print(f"\n{name}: {layer.num_experts} experts (+{layer.num_shared} shared), top-{layer.top_k}, "
              f"d_model {layer.d_model}, d_ffn {layer.d_ffn}; µs per schedule() call (A = active experts)")
        print(f"{'N':>5} {'M':>5} " + " ".join(f"{f'T={t}':>18}" for t in tokens_list))
        cells: dict[int, list[dict]] = {t: [] for t in tokens_list}
        for n in chiplets:
            line = []
            for t in tokens_list:
                row = time_cell(model, n, t, args.steps, args.min_time)
                rows.append(row)
                cells[t].append(row)
                line.append(f"{row['us_per_call']:>10.1f} (A={row['active']:>4.0f})")
            print(f"{n:>5} {row['shards']:>5} " + " ".join(line), flush=True)
        exps = [growth_exponent(cells[t], *FIT_RANGE) for t in tokens_list]
        print(f"{'exp':>11} " + " ".join(f"{'-' if e is None else f'{e:.2f}':>18}" for e in exps))
        for t, e in zip(tokens_list, exps):
            for row in cells[t]:
                row["exponent"] = e
    print(f"\nexp: fitted growth exponent in N, least squares of log(time) on log(N) over "
          f"N = {FIT_RANGE[0]}..{FIT_RANGE[1]}")
    print("issue-17 targets:")
    for name, n, t, limit in TARGETS:
        got = [r for r in rows if r["model"] == name and r["chiplets"] == n and r["tokens"] == t]
        if not got:
            got = [time_cell(one_layer(name), n, t, args.steps, args.min_time)]
            rows.extend(got)
        us = got[0]["us_per_call"]
        print(f"  {name} on {n} chiplets at {t} tokens: {us:.1f} µs (target <= {limit:g} µs): "
              f"{'met' if us <= limit else 'NOT met'}")
    exps = [r["exponent"] for r in rows if r.get("exponent") is not None and r["chiplets"] == FIT_RANGE[1]]
    if exps:
        worst = max(exps)
        print(f"  growth exponent in N, {FIT_RANGE[0]}..{FIT_RANGE[1]} chiplets: worst {worst:.2f} "
              f"(target <= {MAX_EXPONENT}): {'met' if worst <= MAX_EXPONENT else 'NOT met'}")
    print("checksums of every schedule's digest, estimate and bounds (equal across versions: identical results):")
    for r in rows:
        print(f"  {r['model']} N={r['chiplets']} T={r['tokens']}: {r['checksum']} ({r['checked_steps']} steps)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
