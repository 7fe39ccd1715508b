"""`fsedpc crosscheck`: the lightweight scheduler against OR-Tools CP-SAT on layer steps."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "crosscheck",
        help="verify the scheduler with CP-SAT and measure its optimality gap",
        description="For N random small routings of the model's first MoE layer (--random N --seed K) or "
        "real layer steps (--trace F, or --tokens T for a synthetic routing; --layer, --step, --steps): "
        "verify the heuristic schedule's feasibility, find the optimum (or the best found and a bound) "
        "under the virtualization rules, and the price of those rules. CP-SAT runs with 1 worker and a "
        "fixed seed: same inputs, same report.",
    )
    p.add_argument("model", metavar="MODEL.mlir")
    p.add_argument("--target", required=True, metavar="NAME|FILE.toml")
    p.add_argument("--random", type=int, metavar="N", help="N random small routings (1-3 tokens per chiplet)")
    p.add_argument("--trace", metavar="TRACE.npz", help="real steps: a routing trace")
    p.add_argument("--tokens", type=int, metavar="T",
                   help="real steps: a synthetic routing of T tokens spread over the chiplets (as `fsedpc trace "
                   "synth`, with --skew, --locality and --seed)")
    p.add_argument("--skew", default="uniform", help="with --tokens: uniform or zipf:A")
    p.add_argument("--locality", type=float, default=0.0, help="with --tokens: in [0, 1]")
    p.add_argument("--layer", type=int, help="real steps: the MoE layer index (default: the first)")
    p.add_argument("--step", type=int, default=0, help="real steps: the first step")
    p.add_argument("--steps", type=int, default=1, help="real steps: how many steps from --step")
    p.add_argument("--seed", type=int, default=0, help="of the random routings or the synthetic trace")
    p.add_argument("--time-limit", type=float, default=10.0, metavar="SEC", help="wall-clock seconds per CP-SAT solve")
    p.add_argument("--work-limit", type=float, metavar="UNITS",
                   help="instead of --time-limit: CP-SAT's deterministic time per solve, so that solves cut "
                   "short give the same result on any machine and load (one unit is several seconds here)")
    p.add_argument("--relaxed", action="store_true",
                   help="also solve without R1-R3 (any visiting order, path and entry: the price of virtualization) "
                   "and without R6 (a load order per DMA channel: the price of one global order)")
    p.add_argument("--shards-per-chiplet", type=int, metavar="G",
                   help="g (default: 1 for --random; for real steps 0, the compiler's automatic choice)")
    p.add_argument("--buffers", type=int, metavar="B",
                   help="shard buffers per chiplet (default: 6 for --random; for real steps 0, the compiler's "
                   "automatic choice)")
    p.add_argument("--json", metavar="FILE", help="write the report as one JSON object ('-': stdout, the table to stderr)")
    p.set_defaults(func=run)


def _instances(args: argparse.Namespace, model: Any, target: Any) -> tuple[list[Any], dict[str, Any]]:
    """The instances the arguments name, and what they are for the report."""
    from fsedp_compiler.crosscheck.report import random_instances
    from fsedp_compiler.crosscheck.steps import step_instances, synth_steps
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.inputs.traces import load_trace

    sources = [name for name, value in (("--random", args.random), ("--trace", args.trace), ("--tokens", args.tokens))
               if value is not None]
    if len(sources) != 1:
        raise FsedpError("give one of --random N, --trace FILE or --tokens T", field="--random")
    meta: dict[str, Any] = {"model": model.name, "target": target.name}
    if args.random is not None:
        if not 1 <= args.random <= 10_000:
            raise FsedpError(f"must be 1..10000 random routings, got {args.random}", field="--random")
        g, b = args.shards_per_chiplet or 1, 6 if args.buffers is None else args.buffers
        instances = random_instances(model.moe[0], target, args.random, args.seed, shards_per_chiplet=g, buffers=b)
        meta.update(source="random", count=args.random, seed=args.seed, layer=model.moe[0].index)
    else:
        if args.tokens is not None:
            if args.tokens < 1:
                raise FsedpError(f"must be at least 1, got {args.tokens}", field="--tokens")
            trace = synth_steps(model, target, args.tokens, args.step + max(args.steps, 1), args.skew,
                                args.locality, args.seed)
            meta.update(source="synth", tokens=args.tokens, skew=args.skew, locality=args.locality, seed=args.seed)
        else:
            trace = load_trace(args.trace, model)
            meta.update(source=args.trace, tokens=trace.num_tokens)
        instances = step_instances(model, target, trace, args.layer, args.step, args.steps,
                                   args.shards_per_chiplet or 0, args.buffers or 0)
        meta.update(layer=instances[0].routing.layer, step=args.step, steps=args.steps)
    plan = instances[0].plan if instances else None
    if plan is not None:
        meta.update(shards_per_chiplet=plan.num_shards // target.num_chiplets, shards_per_expert=plan.num_shards,
                    buffers=plan.buffers)
    return instances, meta


def run(args: argparse.Namespace) -> int:
    from fsedp_compiler.console import make_console
    from fsedp_compiler.crosscheck.report import crosscheck, summary
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.fileio import check_output_path, is_stdio, write_output
    from fsedp_compiler.inputs.target_files import resolve_target
    from fsedp_compiler.ir.modules import load_model_spec
    from fsedp_compiler.progress import RunProgress

    if args.json:
        check_output_path(args.json)  # before the solves, not after them
    model = load_model_spec(args.model)
    target = resolve_target(args.target)
    for name, value in (("--time-limit", args.time_limit), ("--work-limit", args.work_limit)):
        if value is not None and not value > 0:
            raise FsedpError(f"must be positive, got {value:g}", field=name)
    rows = []
    # a bar on a terminal, else a status line every 10 s: one instance is a random routing or a layer step
    with RunProgress("crosscheck", unit="instance") as progress:
        progress.update(label="building the instances")
        instances, meta = _instances(args, model, target)
        progress.update(0, len(instances), label="")
        for i, inst in enumerate(instances):
            progress.update(i, label=f"solving instance {i}")
            rows.append(crosscheck(inst, time_limit=args.time_limit, work_limit=args.work_limit,
                                   relaxed=args.relaxed))
    limit = f"{args.time_limit:g} s limit" if args.work_limit is None else f"work limit {args.work_limit:g}"
    meta.update(limit=limit, relaxed=args.relaxed)
    report = {**meta, "instances": rows, **summary(rows)}
    console = make_console(stderr=is_stdio(args.json))  # keep a '-' output clean
    _print(console, report, f"{model.name} on {target.name}: heuristic vs CP-SAT (1 worker, seed 1, {limit})")
    if args.json:
        for r in rows:  # wall-clock fields vary run to run; the decisions and times do not
            for key, digits in (("solver_s", 3), ("verify_s", 3), ("heuristic_s", 6)):
                r[key] = round(r[key], digits)
        write_output(args.json, json.dumps(report, indent=2) + "\n")
    return 0 if report["all_verified"] else 1


def _print(console: Any, report: dict[str, Any], title: str) -> None:
    """The table of instances, the summary line, the bounds of cut-short solves, violations."""
    from rich.table import Table

    rows = report["instances"]
    table = Table(title=title, title_justify="left")
    for col in ("#", "streams", "shards", "heuristic", "CP-SAT best", "bound", "status", "gap", "verified",
                "relaxed", "price", "R6 price", "solver s", "heuristic ms"):
        table.add_column(col, justify="right")
    for i, r in enumerate(rows):
        table.add_row(str(i), str(r["streams"]), str(r["shards"]), str(r["heuristic_ns"]), str(r["best_ns"]),
                      str(r["bound_ns"]), r["status"], f"{r['gap']:.1%}", "yes" if r["verified"] else "NO",
                      str(r.get("relaxed_ns", "-")),
                      f"{r['price_of_virtualization']:.1%}" if "price_of_virtualization" in r else "-",
                      f"{r['price_of_global_order']:.1%}" if "price_of_global_order" in r else "-",
                      f"{r['solver_s']:.2f}", f"{1e3 * r['heuristic_s']:.2f}")
    console.print(table)
    s = report
    line = f"median gap {s['median_gap']:.2%}, max gap {s['max_gap']:.2%}"
    line += f" (to the best found: {s['median_gap_to_best']:.2%}, {s['max_gap_to_best']:.2%})"
    if s["median_price_of_virtualization"] is not None:
        line += f", median price of virtualization {s['median_price_of_virtualization']:.2%}"
    if s["median_price_of_global_order"] is not None:
        line += f", median price of one global order (R6) {s['median_price_of_global_order']:.2%}"
    line += (f"; median solver {s['median_solver_s']:.2f} s vs heuristic {1e3 * s['median_heuristic_s']:.2f} ms; "
             f"all verified: {s['all_verified']}")
    console.print(line)
    for i, r in enumerate(rows):
        if r["status"] != "OPTIMAL":
            b, alt = r["bounds"], r["alternatives_ns"]
            console.print(f"instance {i}: bounds: DRAM {b['dram']}, compute {b['compute']}, link {b['link']}, "
                          f"one global order {b['global_order']}; other directions: "
                          + (", ".join(f"{k} {v}" for k, v in alt.items()) or "none"))
        if not r["verified"]:
            console.print(f"instance {i}: {r['violation']}")
