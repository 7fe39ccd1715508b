"""`fsedpc simulate OUTDIR`: run compiled instruction streams on the bundled simulator."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a compiled program (timing, optionally functional)",
        description="Run the .bin instruction streams of an `fsedpc compile` output directory on the "
        "machine model of its target: timing always, numbers too with --functional. A dynamic program "
        "needs --trace (the controller schedules each step on its routing); a static one carries its own.",
    )
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--trace", metavar="TRACE.npz", help="routing trace (dynamic programs; default: the compiled one)")
    p.add_argument("--functional", action="store_true",
                   help="carry real weights and activations and check every token against reference.py")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference weights and activations (functional)")
    p.add_argument("--timeline", metavar="FILE.json", help="write a Chrome trace (open in Perfetto UI); '-': stdout")
    p.add_argument("--metrics", metavar="FILE.json", help="write metrics.json; '-': stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from fsedp_compiler.console import human_bytes, make_console
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.fileio import check_outputs, is_stdio, write_outputs
    from fsedp_compiler.inputs.traces import load_trace
    from fsedp_compiler.progress import RunProgress
    from fsedp_compiler.sim.errors import DeadlockError
    from fsedp_compiler.sim.loader import load_outdir
    from fsedp_compiler.sim.run import deterministic_metrics, np_default, simulate
    from fsedp_compiler.sim.timeline import chrome_trace

    check_outputs([args.metrics, args.timeline])  # before the run, not after it
    # a bar on a terminal, else a status line every 10 s (big programs take a while to load too)
    with RunProgress("simulate", unit="phase") as progress:
        progress.update(label="loading the program")
        loaded = load_outdir(args.outdir)
        trace = None
        if loaded.mode == "static" and args.trace:
            given, bundled = load_trace(args.trace), loaded.trace
            assert bundled is not None
            same = (given.layer_indices == bundled.layer_indices and given.experts.shape == bundled.experts.shape
                    and (given.experts == bundled.experts).all() and (given.weights == bundled.weights).all()
                    and (given.token_chiplet == bundled.token_chiplet).all())
            if not same:
                raise FsedpError("a static program runs the routing it was compiled for; this trace differs",
                                 path=args.trace, field="--trace")
        elif args.trace:
            trace = load_trace(args.trace)
        data = None
        if args.functional:
            from fsedp_compiler.sim.data import DataPlane

            progress.update(label="functional set-up")
            data = DataPlane(loaded, args.seed)
        progress.update(label="simulating, functional: weights and the reference per step" if args.functional
                        else "simulating")
        try:
            result = simulate(loaded, trace, data=data, keep_ops=bool(args.timeline),
                              progress=lambda done, total: progress.update(done, total))
        except DeadlockError as err:  # exit 3, naming the program directory (the report names the chiplets)
            err.path = err.path or args.outdir
            raise
    m = result.metrics
    outputs = []
    if args.metrics:
        outputs.append((args.metrics, json.dumps(deterministic_metrics(m), indent=2, default=np_default) + "\n"))
    if args.timeline:
        doc = chrome_trace(result.ops, loaded.target.num_chiplets, f"{m['model']} on {m['target']}")
        outputs.append((args.timeline, json.dumps(doc, separators=(",", ":")) + "\n"))
    write_outputs(outputs)

    out = make_console(stderr=any(is_stdio(path) for path, _ in outputs))  # keep a '-' output clean
    out.print(f"{m['model']} on {m['target']}, {m['mode']} mode: {m['steps']} steps x {m['tokens']} tokens")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("makespan", f"{m['makespan_ns'] / 1e3:,.2f} us"),
        ("per token-step", f"{m['makespan_ns'] / 1e3 / max(m['steps'], 1):,.2f} us / step"),
        ("tokens/s", f"{m['tokens_per_s']:,.0f}"),
        ("lower bound", f"{m['lower_bound_ns'] / 1e3:,.2f} us"),
        ("efficiency", f"{m['efficiency']:.1%}"),
        ("DRAM bytes", human_bytes(m["dram_bytes"])),
        ("D2D bytes", human_bytes(m["d2d_bytes"])),
        ("peak SRAM (most on a chiplet)", human_bytes(max(m["sram_peak_bytes"]))
         + ("" if m["sram_fits"] else f" (over its {human_bytes(m['sram_capacity_bytes'])})")),
        ("energy", f"{m['energy_pj']['total'] / 1e6:,.2f} uJ"),
        ("simulated ops", f"{m['sim_events']:,} in {m['sim_wall_s']:.2f} s"),
    ]
    if args.functional:
        rows.append(("functional check", f"{m['functional']['checked_layer_steps']} layer-steps match reference.py"))
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
    return 0
