"""`fsedpc bench`: compile and simulate FSE-DP and the baselines on the same traces, one table."""

from __future__ import annotations

import argparse
import json

DEFAULT_STRATEGIES = "fsedp,ep,ep-serial,hydra,tp,dp,fsdp,ep-cache"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="compare FSE-DP with the baselines on the same routing",
        description="For every token count, synthesise one routing trace (or use --trace), then compile and "
        "simulate every strategy on it with the same backend and cost model. Prints step time, FSE-DP's "
        "speedup over each strategy, efficiency vs the strategy's own lower bound, DRAM and D2D bytes, peak "
        "SRAM per chiplet (and FSE-DP's saving), energy.",
    )
    p.add_argument("model", metavar="MODEL.mlir")
    p.add_argument("--target", default="paper-2x2", metavar="NAME|FILE.toml", help="default: paper-2x2")
    p.add_argument("--tokens", default="16,64,256", metavar="LIST", help="tokens per step (default 16,64,256)")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, metavar="LIST|all",
                   help=f"comma-separated; 'all' is every strategy (ablations too); 'auto' the program of compile "
                        f"--strategy auto (e.g. all,auto); default {DEFAULT_STRATEGIES}")
    p.add_argument("--steps", type=int, default=4, help="decode steps per trace (default 4)")
    p.add_argument("--trace", metavar="TRACE.npz",
                   help="use this routing instead of synthesising one (its token count replaces --tokens)")
    p.add_argument("--skew", default="uniform", help="synthetic routing: 'uniform' or 'zipf:A'")
    p.add_argument("--locality", type=float, default=0.0, help="synthetic routing: temporal locality in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="synthetic routing seed")
    p.add_argument("--moe-layers", type=int, metavar="N", help="only the first N MoE layers (default: all)")
    p.add_argument("--no-dense", action="store_true",
                   help="drop the dense (attention) blocks: compare the MoE steps alone, as the FSE-DP paper does")
    p.add_argument("--dtype", choices=("int8", "fp8", "bf16", "fp16", "fp32"),
                   help="weight dtype of every MoE layer (default: the model's)")
    p.add_argument("--buffers", type=int, default=0, metavar="B", help="shard/tile buffers per chiplet (R4: >= 2; default 0: as many as fit in half the SRAM, 6..32 (64 when cut finer), with the shard size of 6)")
    p.add_argument("--shards-per-chiplet", type=int, default=0, metavar="G", help="0: smallest that fits SRAM")
    p.add_argument("--hydra-skip-single", action="store_true", help="hydra skips single-token experts (inexact)")
    p.add_argument("--functional", action="store_true", help="also check every run against reference.py")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON ('-': stdout, the table to stderr)")
    p.add_argument("--csv", metavar="FILE", help="write the rows as CSV ('-': stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="step time, peak SRAM and engine-busy figure (matplotlib)")
    p.set_defaults(func=run)


def parse_strategies(text: str) -> tuple[str, ...]:
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.pipeline.compile import all_strategies
    from fsedp_compiler.strategies import NAMES

    known = NAMES
    words = [s.strip() for s in text.split(",") if s.strip()]
    names = tuple(dict.fromkeys(n for w in words for n in (all_strategies() if w == "all" else (w,))))
    bad = [s for s in names if s not in known]
    if bad or not names:
        raise FsedpError(f"unknown strategy '{bad[0] if bad else text}'; known: {', '.join(known)}",
                         field="--strategies")
    if "fsedp" not in names:
        names = ("fsedp", *names)  # the ratios are FSE-DP's over each strategy
    return names


def parse_tokens(text: str) -> tuple[int, ...]:
    from fsedp_compiler.errors import FsedpError

    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise FsedpError(f"expected comma-separated token counts >= 1, got '{text}'", field="--tokens")
    return tuple(sorted(set(values)))


def run(args: argparse.Namespace) -> int:
    from fsedp_compiler.bench.runner import BenchConfig, restrict_model, run_bench
    from fsedp_compiler.console import make_console
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.fileio import check_outputs, is_stdio, write_outputs
    from fsedp_compiler.ir.modules import load_model_spec
    from fsedp_compiler.progress import RunProgress

    if args.steps < 1:
        raise FsedpError(f"must be >= 1, got {args.steps}", field="--steps")
    model = restrict_model(load_model_spec(args.model), args.moe_layers, not args.no_dense, args.dtype)
    cfg = BenchConfig(model=model, target=args.target, tokens=parse_tokens(args.tokens),
                      strategies=parse_strategies(args.strategies), steps=args.steps, trace=args.trace,
                      skew=args.skew, locality=args.locality, seed=args.seed, buffers=args.buffers,
                      shards_per_chiplet=args.shards_per_chiplet, functional=args.functional,
                      hydra_skip_single=args.hydra_skip_single)
    check_outputs([args.json, args.csv, args.plot])  # fail before the runs, not after them
    if args.plot:
        from fsedp_compiler.bench.plots import _pyplot

        _pyplot()  # likewise when matplotlib is missing
    runs = len(cfg.strategies) * (1 if cfg.trace else len(cfg.tokens))
    with RunProgress("bench", total=runs, unit="run") as progress:  # a bar, or a status line every 10 s
        report = run_bench(cfg, progress.begin)
    outputs = bench_outputs(report, args.json, args.csv, args.plot)
    write_outputs(outputs)  # all or nothing: each is complete before the first is renamed
    print_table(report, make_console(stderr=any(is_stdio(path) for path, _ in outputs)))
    return 0


def bench_outputs(report: dict, json_path: str | None, csv_path: str | None,
                  plot_path: str | None) -> list[tuple[str, str | bytes]]:
    """(path, contents) of every output asked for, all produced in memory before any is written."""
    outputs: list[tuple[str, str | bytes]] = []
    if json_path:
        outputs.append((json_path, json.dumps(report, indent=2) + "\n"))
    if csv_path:
        outputs.append((csv_path, to_csv(report)))
    if plot_path:
        from fsedp_compiler.bench.plots import render_report

        outputs.append((plot_path, render_report(report)))
    return outputs


def to_csv(report: dict) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["strategy", "tokens", "steps", "makespan_ns", "step_ns", "lower_bound_ns", "efficiency", "dram_bytes",
            "d2d_bytes", "sram_peak_max_bytes", "sram_fits", "energy_pj", "speedup_of_fsedp", "sram_saving_of_fsedp",
            "busy_dram", "busy_link", "busy_compute", "binds", "exact", "chosen", "sched_estimate"]
    w.writerow(cols)
    for r in report["rows"]:
        w.writerow([r["strategy"], r["tokens"], r["steps"], r["makespan_ns"], r["step_ns"], r["lower_bound_ns"],
                    r["efficiency"], r["dram_bytes"], r["d2d_bytes"], max(r["sram_peak_bytes"]), r["sram_fits"],
                    r["energy_pj"], r["speedup_of_fsedp"], r["sram_saving_of_fsedp"], r["engine_busy"]["dram"],
                    r["engine_busy"]["link"], r["engine_busy"]["compute"], r["binds"],
                    "" if r["exact"] is None else r["exact"], r["chosen"] or "",
                    "" if r["sched_estimate"] is None else r["sched_estimate"]])
    return buf.getvalue()


def print_table(report: dict, console) -> None:
    from rich.table import Table

    from fsedp_compiler.console import human_bytes
    from fsedp_compiler.pipeline.compare import binding_text

    r0 = report["routing"]
    routing = (f"trace {r0['trace']}" if "trace" in r0 else
               f"{r0['steps']} steps, {r0['skew']} routing, locality {r0['locality']}, seed {r0['seed']}")
    console.print(f"{report['model']} (MoE layers {report['moe_layers']}, {report['dtype']}"
                  f"{', with dense blocks' if report['dense'] else ''}) on {report['target']}: {routing}")
    table = Table()
    for col in ("strategy", "tokens", "step time", "fsedp speedup", "efficiency", "binds", "DRAM/step", "D2D/step",
                "peak SRAM", "fsedp SRAM saving", "energy/step", "sched. est."):
        table.add_column(col, justify="left" if col in ("strategy", "binds") else "right")
    for r in report["rows"]:
        steps = max(r["steps"], 1)
        speed = r["speedup_of_fsedp"]
        saving = r["sram_saving_of_fsedp"]
        peak = human_bytes(max(r["sram_peak_bytes"])) + ("" if r["sram_fits"] else " (over SRAM)")
        name = (r["strategy"] + (f" ({r['chosen']})" if r.get("chosen") else "")
                + (" (inexact)" if r["exact"] is False else ""))
        table.add_row(name, str(r["tokens"]), f"{r['step_ns'] / 1e3:,.2f} us",
                      "-" if speed is None else f"{speed:.2f}x", f"{r['efficiency']:.1%}", binding_text(r["max_busy"]),
                      human_bytes(r["dram_bytes"] / steps), human_bytes(r["d2d_bytes"] / steps), peak,
                      "-" if saving is None else f"{saving:.1%}", f"{r['energy_pj'] / steps / 1e6:,.2f} uJ",
                      "-" if r["sched_estimate"] is None else f"{r['sched_estimate']:.3f}")
    console.print(table)
    for b in report.get("best_strong", []):
        console.print(best_strong_line(b))
    console.print("speedup = strategy step time / fsedp step time on the same routing; efficiency = the "
                  "strategy's own lower bound / its step time; binds = the busiest DRAM channel, link or compute "
                  "engine when it is busy >= 80% of the time, else tail (dependencies, buffers, latency); "
                  "(over SRAM) = peak SRAM above the chiplet's capacity: shown, never counted as the best; "
                  "sched. est. = the FSE-DP scheduler's step estimate / the simulated step time")


def best_strong_line(b: dict) -> str:
    """One token count's comparison: the best strong baseline that fits SRAM against FSE-DP."""
    left = "; left out: " + ", ".join(f"{s} ({why})" for s, why in b["excluded"].items()) if b["excluded"] else ""
    if b["strategy"] is None:
        return f"{b['tokens']} tokens: no strong baseline that fits SRAM was run{left}"
    fsedp = ("" if b["speedup_of_fsedp"] is None else
             f"; fsedp's speedup over it {b['speedup_of_fsedp']:.3f}x (fsedp binds {b['fsedp_binds']})")
    return (f"{b['tokens']} tokens: best strong baseline that fits SRAM: {b['strategy']} "
            f"{b['step_ns'] / 1e3:,.2f} us (binds {b['binds']}){fsedp}{left}")
