"""`--strategy auto`'s choice (`pipeline/auto.evaluate`) timed with and without pruning (not a test).

    .venv/bin/python benchmarks/auto_bench.py MODEL.mlir --target mesh-4x4 [--trace T.npz]
        [--tokens 64 --steps 4 --seed 0] [--moe-layers N] [--no-full] [--json FILE]

Shards the model for the target (the first N MoE layers with --moe-layers), takes the trace (or a
synthetic uniform one of --tokens x --steps) and times `evaluate` with pruning (bounds, estimates in
bound order, the exact shortcuts) and, unless --no-full, estimating every candidate as before; it
checks both choose the same plan and runner-up with the same estimates per layer, and prints per
layer how many candidates were estimated and each run's seconds. Compare times as ratios: both
runs are made here, one after the other, on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fsedp_compiler.bench.runner import restrict_model
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.ir.layers import cached_trace, module_model
from fsedp_compiler.ir.modules import load_model_spec, make_context, module_from_spec, require_target
from fsedp_compiler.pipeline.auto import LayerChoice, default_candidates, evaluate
from fsedp_compiler.pipeline.compile import plan_passes
from fsedp_compiler.pipeline.driver import run_passes


def timed(module, trace, names: tuple[str, ...], prune: bool) -> tuple[list[LayerChoice], float]:
    """`evaluate`'s choices and its wall time (s)."""
    start = time.perf_counter()
    choices = evaluate(module, trace, names, "static", prune=prune)
    return choices, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--target", default="mesh-4x4")
    p.add_argument("--trace", help="routing trace (default: synthetic uniform, --tokens x --steps)")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--moe-layers", type=int, help="only the first N MoE layers")
    p.add_argument("--no-full", action="store_true", help="skip the run that estimates every candidate")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)

    spec = load_model_spec(args.model)
    if args.moe_layers:
        spec = restrict_model(spec, args.moe_layers, True, None)
    ctx = make_context()
    module = module_from_spec(spec)
    run_passes(ctx, module, plan_passes(target=args.target, trace=args.trace), verify_each=False,
               verify_at_end=False)
    system = require_target(module, "auto_bench")
    if args.trace:
        trace = cached_trace(args.trace, module_model(module))
    else:
        trace = synth_trace(module_model(module), args.tokens, args.steps, system.num_chiplets, "uniform", 0.0,
                            args.seed)
    names = default_candidates("static")
    pruned, t_pruned = timed(module, trace, names, True)
    full, t_full = (None, None) if args.no_full else timed(module, trace, names, False)
    if full is not None:
        for a, b in zip(full, pruned, strict=True):
            if (a.chosen, a.runner_up) != (b.chosen, b.runner_up):
                print(f"MISMATCH at layer {a.layer}: {a.chosen.strategy}/{b.chosen.strategy}", file=sys.stderr)
                return 1
    table = Table(title=f"auto on {Path(args.model).name}, {system.name}, {trace.num_steps} steps x "
                        f"{trace.num_tokens} tokens")
    for col in ("layer", "chosen", "runner-up", "estimated", "pruned"):
        table.add_column(col)
    for c in pruned:
        table.add_row(str(c.layer), c.chosen.strategy, c.runner_up.strategy if c.runner_up else "-",
                      ", ".join(x.strategy for x in c.candidates), str(len(c.pruned)))
    console = Console()
    console.print(table)
    estimated = sum(len(c.candidates) for c in pruned)
    considered = sum(c.considered for c in pruned)
    console.print(f"pruned: {t_pruned:.1f} s ({estimated} of {considered} layer candidates estimated)"
                  + ("" if t_full is None else f"; every candidate: {t_full:.1f} s; ratio {t_full / t_pruned:.1f}x; "
                     "same choices and runner-ups"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": spec.name, "target": system.name, "steps": trace.num_steps, "tokens": trace.num_tokens,
            "layers": len(pruned), "pruned_s": round(t_pruned, 2), "full_s": None if t_full is None else round(t_full, 2),
            "estimated": estimated, "considered": considered,
            "choices": {c.layer: [c.chosen.strategy, c.runner_up.strategy if c.runner_up else None] for c in pruned},
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
