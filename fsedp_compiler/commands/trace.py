"""`fsedpc trace`: make routing traces (synthetic, or imported from a JSONL dump); summarise."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rich.table import Table

from fsedp_compiler.console import make_console
from fsedp_compiler.files.fileio import STDOUT_NAME, check_output_path, is_stdio


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `trace` and its actions `synth`, `import`, `stats`."""
    parser = subparsers.add_parser(
        "trace",
        help="make or summarise expert-routing traces (.npz)",
        description="Make expert-routing traces (synthetic or imported); print their statistics.",
    )
    parser.set_defaults(func=run)
    # Same parser class as the top level, so usage errors exit with code 2 everywhere.
    parser_class = getattr(subparsers, "_parser_class", type(parser))
    actions = parser.add_subparsers(
        dest="trace_action", metavar="ACTION", parser_class=parser_class
    )
    actions.required = True

    synth = actions.add_parser(
        "synth",
        help="seeded synthetic decode trace",
        description="Seeded synthetic decode trace with Zipf expert skew and temporal locality.",
    )
    add = synth.add_argument
    add("model", metavar="MODEL.mlir", help="model whose MoE layers the trace covers")
    add("--tokens", type=int, required=True, help="tokens (sequences) per decode step")
    add("--steps", type=int, required=True, help="decode steps")
    add("--chiplets", type=int, required=True, help="chiplets the tokens are spread over")
    add("--skew", default="uniform",
        help="expert popularity 'uniform' or 'zipf:A': p(rank r) ∝ r^-A (default uniform)")
    add("--locality", type=float, default=0.0,
        help="fraction of expert choices repeating the token's previous step (default 0)")
    add("--seed", type=int, required=True, help="random seed (same seed, same bytes)")
    add("-o", "--output", required=True, metavar="TRACE.npz", help="output trace ('-': stdout)")

    imp = actions.add_parser(
        "import",
        help="import a JSON Lines routing dump",
        description="Import a JSON Lines routing dump (one record per layer and token).",
    )
    imp.add_argument("input", metavar="ROUTING.jsonl")
    imp.add_argument("--model", required=True, metavar="MODEL.mlir")
    imp.add_argument("--chiplets", type=int, required=True)
    imp.add_argument("--tokens-per-step", type=int, required=True,
                     help="consecutive tokens grouped into one decode step")
    imp.add_argument("-o", "--output", required=True, metavar="TRACE.npz", help="output trace ('-': stdout)")

    stats = actions.add_parser(
        "stats",
        help="per-layer statistics of a trace",
        description="Per-layer load skew, locality and expert fan-out of a trace.",
    )
    stats.add_argument("trace", metavar="TRACE.npz")
    stats.add_argument("--json", action="store_true", help="print one JSON object, no tables")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action."""
    return {"synth": _synth, "import": _import, "stats": _stats}[args.trace_action](args)


def _load_model(path: str) -> Any:
    from fsedp_compiler.ir.modules import load_model_spec  # lazy: pulls in xDSL

    return load_model_spec(path)


def _report_console(output: str) -> Any:
    """The console for the summary: stderr when the trace itself goes to stdout."""
    return make_console(stderr=is_stdio(output))


def _written(output: str) -> str:
    return STDOUT_NAME if is_stdio(output) else output


def _synth(args: argparse.Namespace) -> int:
    from fsedp_compiler.inputs.trace_synth import synth_trace
    from fsedp_compiler.inputs.traces import save_trace

    check_output_path(args.output)  # before any work
    model = _load_model(args.model)
    trace = synth_trace(model, args.tokens, args.steps, args.chiplets, skew=args.skew,
                        locality=args.locality, seed=args.seed)
    save_trace(trace, args.output)
    _report_console(args.output).print(
        f"wrote {_written(args.output)}: {trace.num_layers} MoE layers × {trace.num_steps} steps × "
        f"{trace.num_tokens} tokens, top-{trace.top_k} of {trace.num_experts} experts, "
        f"{trace.num_chiplets} chiplets")
    return 0


def _import(args: argparse.Namespace) -> int:
    from fsedp_compiler.inputs.trace_import import import_routing_jsonl
    from fsedp_compiler.inputs.traces import save_trace

    check_output_path(args.output)  # before any work
    model = _load_model(args.model)
    trace, report = import_routing_jsonl(args.input, model, args.chiplets, args.tokens_per_step)
    save_trace(trace, args.output)
    table = Table(title=f"import {args.input}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in report.rows():
        table.add_row(what, count)
    console = _report_console(args.output)
    console.print(table)
    console.print(f"wrote {_written(args.output)}: {trace.num_layers} MoE layers × "
                  f"{trace.num_steps} steps × {trace.num_tokens} tokens")
    return 0


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _stats(args: argparse.Namespace) -> int:
    from fsedp_compiler.inputs.trace_stats import trace_stats
    from fsedp_compiler.inputs.traces import load_trace

    stats = trace_stats(load_trace(args.trace))
    if args.json:
        print(json.dumps(stats, sort_keys=True))
        return 0
    meta = stats["meta"]
    how = meta.get("source", "?")
    if how == "synth":
        how += f" skew={meta.get('skew')} locality={meta.get('locality')} seed={meta.get('seed')}"
    elif how == "import":
        how += f" from {meta.get('input')}"
    console = make_console()
    console.print(f"{args.trace}: model {meta['model']}, {stats['num_layers']} MoE layers × "
                  f"{stats['steps']} steps × {stats['tokens']} tokens, top-{stats['top_k']} of "
                  f"{stats['num_experts']} experts, {stats['chiplets']} chiplets ({how})")
    table = Table(title="per-layer routing statistics")
    for col, tip in (("layer", ""), ("active A", "distinct experts per step"),
                     ("mean |S_e|", "chiplets per active expert"), ("max/mean load", ""),
                     ("zipf exp", "fitted"), ("locality", "measured"), ("hottest experts", "")):
        table.add_column(col, justify="left" if col == "hottest experts" else "right")
    for row in stats["layers"]:
        load = row["load"]
        hot = sorted(range(len(load)), key=lambda e: (-load[e], e))[:3]
        table.add_row(str(row["layer"]), _fmt(row["active_experts"], 1),
                      _fmt(row["mean_chiplets_per_expert"]), _fmt(row["max_mean_load"]),
                      _fmt(row["zipf_exponent"]), _fmt(row["locality"], 3),
                      ", ".join(f"{e}:{load[e]}" for e in hot))
    console.print(table)
    return 0
