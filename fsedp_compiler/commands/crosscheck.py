"""`fsedpc crosscheck`: the lightweight scheduler against OR-Tools CP-SAT on layer steps."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "crosscheck",
        help="verify the scheduler with CP-SAT and measure its optimality gap",
        description="For one routed layer step (--trace/--layer/--step) or N random small routings of the "
        "model's first MoE layer (--random N --seed K): verify the heuristic schedule's feasibility, "
        "find the optimum (or best bound) under the virtualization rules, and the price of those rules. "
        "CP-SAT runs with 1 worker and a fixed seed: same inputs, same report.",
    )
    p.add_argument("model", metavar="MODEL.mlir")
    p.add_argument("--target", required=True, metavar="NAME|FILE.toml")
    p.add_argument("--trace", metavar="TRACE.npz")
    p.add_argument("--layer", type=int, help="MoE layer index (with --trace)")
    p.add_argument("--step", type=int, default=0, help="step (with --trace)")
    p.add_argument("--random", type=int, metavar="N", help="N random small routings instead of a trace")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=10.0, metavar="SEC", help="wall-clock seconds per CP-SAT solve")
    p.add_argument("--work-limit", type=float, metavar="UNITS",
                   help="instead of --time-limit: CP-SAT's deterministic time per solve, so that solves cut "
                   "short give the same result on any machine and load (one unit is several seconds here)")
    p.add_argument("--relaxed", action="store_true",
                   help="also solve without R1-R3 (any visiting order, path and entry: the price of virtualization) "
                   "and without R6 (a load order per DMA channel: the price of one global order)")
    p.add_argument("--shards-per-chiplet", type=int, default=1, metavar="G")
    p.add_argument("--buffers", type=int, default=6, metavar="B")
    p.add_argument("--json", metavar="FILE", help="write the report as one JSON object ('-': stdout, the table to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress
    from rich.table import Table

    from fsedp_compiler.console import make_console
    from fsedp_compiler.costmodel import CostModel
    from fsedp_compiler.crosscheck import Instance
    from fsedp_compiler.crosscheck_report import crosscheck, random_instances, summary
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.fileio import check_output_path, is_stdio, write_output
    from fsedp_compiler.ir import load_model_spec
    from fsedp_compiler.ring import Ring
    from fsedp_compiler.routing import load_trace
    from fsedp_compiler.scheduler import StepRouting
    from fsedp_compiler.shardplan import make_shard_plan
    from fsedp_compiler.target import resolve_target

    if args.json:
        check_output_path(args.json)  # before the solves, not after them
    model = load_model_spec(args.model)
    target = resolve_target(args.target)
    for name, value in (("--time-limit", args.time_limit), ("--work-limit", args.work_limit)):
        if value is not None and not value > 0:
            raise FsedpError(f"must be positive, got {value:g}", field=name)
    if (args.random is None) == (args.trace is None):
        raise FsedpError("give either --trace (with --layer and --step) or --random N", field="--random")
    if args.random is not None and not 1 <= args.random <= 10_000:
        raise FsedpError(f"must be 1..10000 random routings, got {args.random}", field="--random")
    if args.random is not None:
        instances = random_instances(model.moe[0], target, args.random, args.seed,
                                     shards_per_chiplet=args.shards_per_chiplet, buffers=args.buffers)
    else:
        trace = load_trace(args.trace, model)
        layer_index = args.layer if args.layer is not None else model.moe[0].index
        if layer_index not in trace.layer_indices:
            raise FsedpError(f"the trace has no MoE layer {layer_index}", field="--layer")
        if not 0 <= args.step < trace.num_steps:
            raise FsedpError(f"step must be in 0..{trace.num_steps - 1}", field="--step")
        layer = model.moe_layer(layer_index)
        experts, weights = trace.step(trace.layer_indices.index(layer_index), args.step)
        plan = make_shard_plan(layer, target, args.shards_per_chiplet, args.buffers)
        instances = [Instance(plan, Ring(target.ring), CostModel(target, layer.dtype),
                              StepRouting(experts, weights, trace.token_chiplet, layer_index, args.step))]
    rows = []
    with Progress(console=make_console(stderr=True), transient=True) as bar:
        task = bar.add_task("cross-checking", total=len(instances))
        for inst in instances:
            rows.append(crosscheck(inst, time_limit=args.time_limit, work_limit=args.work_limit,
                                   relaxed=args.relaxed))
            bar.advance(task)
    report = {"instances": rows, **summary(rows)}
    console = make_console(stderr=is_stdio(args.json))  # keep a '-' output clean
    limit = f"{args.time_limit:g} s limit" if args.work_limit is None else f"work limit {args.work_limit:g}"
    table = Table(title=f"{model.name} on {target.name}: heuristic vs CP-SAT (1 worker, seed 1, {limit})",
                  title_justify="left")
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
    if s["median_price_of_virtualization"] is not None:
        line += f", median price of virtualization {s['median_price_of_virtualization']:.2%}"
    if s["median_price_of_global_order"] is not None:
        line += f", median price of one global order (R6) {s['median_price_of_global_order']:.2%}"
    line += (f"; median solver {s['median_solver_s']:.2f} s vs heuristic {1e3 * s['median_heuristic_s']:.2f} ms; "
             f"all verified: {s['all_verified']}")
    console.print(line)
    for i, r in enumerate(rows):
        if not r["verified"]:
            console.print(f"instance {i}: {r['violation']}")
    if args.json:
        for r in rows:  # wall-clock fields vary run to run; the decisions and times do not
            r["solver_s"] = round(r["solver_s"], 3)
            r["heuristic_s"] = round(r["heuristic_s"], 6)
        write_output(args.json, json.dumps(report, indent=2) + "\n")
    return 0 if s["all_verified"] else 1
