"""`fsedpc compile MODEL.mlir -o OUTDIR`: FSE-DP (or a baseline strategy) down to per-chiplet ISA."""

from __future__ import annotations

import argparse

from fsedp_compiler.strategies import ALL, FSEDP

DEFAULT_TARGET = "paper-2x2"
#: FSE-DP and its ablations: (order, direction, trajectory) (fsedp_compiler/strategies.py).
STRATEGIES = FSEDP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a moe model to per-chiplet instruction streams",
        description="Run attach-target, shard-experts, virtualize-streams, schedule-streams, lower-to-dataflow, "
        "expand-dataflow and emit-isa. With --trace the schedule is static (per routed step); without, "
        "dynamic (the controller schedules at run time). Writes OUTDIR/chiplet_<i>.fsa/.bin, program.json "
        "and final.mlir.",
    )
    p.add_argument("model", metavar="MODEL.mlir", help="input module ('-' for stdin)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--target", metavar="NAME|FILE.toml",
                   help=f"chiplet system (default: the module's own, else {DEFAULT_TARGET})")
    p.add_argument("--trace", metavar="TRACE.npz", help="routing trace (implies --mode static)")
    p.add_argument("--mode", choices=("static", "dynamic"), help="static needs --trace; default: static with a trace")
    p.add_argument("--shards-per-chiplet", type=int, default=0, metavar="G",
                   help="g: each expert is cut into g x chiplets shards (default 0: smallest that fits SRAM)")
    p.add_argument("--buffers", type=int, default=0, metavar="B", help="shard/tile buffers per chiplet (R4: >= 2; default 0: as many as fit in half the SRAM, 6..32, with the shard size of 6)")
    p.add_argument("--strategy", default="fsedp", choices=all_strategies(),
                   help="FSE-DP, one of its ablations, or a baseline (static only; default: fsedp)")
    p.add_argument("--hydra-skip-single", action="store_true",
                   help="hydra as the authors' code runs it: experts routed one token are skipped (inexact)")
    p.add_argument("--order", choices=("paired", "work", "id"), help="global stream order (R6; overrides the strategy)")
    p.add_argument("--direction", choices=("per-shard", "balanced", "cw"),
                   help="ring direction policy (overrides the strategy): per-shard (each expert cw, ccw or every "
                        "shard the shorter way), balanced (one direction per expert), cw")
    p.add_argument("--verify-each", action="store_true",
                   help="verify the whole module after every pass (debugging; default: once, at the end)")
    p.set_defaults(func=run)


def all_strategies() -> tuple[str, ...]:
    """FSE-DP and its ablations, then the baselines."""
    return ALL


def compile_passes(strategy: str, *, target: str | None, trace: str | None, mode: str, shards_per_chiplet: int = 0,
                   buffers: int = 0, order: str | None = None, direction: str | None = None,
                   hydra_skip_single: bool = False) -> list:
    """The pass pipeline of `strategy` (attach-target first when `target` is given)."""
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.passes.attach_target import AttachTargetPass
    from fsedp_compiler.passes.expand_dataflow import ExpandDataflowPass
    from fsedp_compiler.passes.lower_baseline import LowerBaselinePass
    from fsedp_compiler.passes.lower_to_dataflow import LowerToDataflowPass
    from fsedp_compiler.passes.schedule_streams import ScheduleStreamsPass
    from fsedp_compiler.passes.shard_experts import ShardExpertsPass
    from fsedp_compiler.passes.virtualize_streams import VirtualizeStreamsPass

    passes: list = [AttachTargetPass(target=target)] if target else []
    passes.append(ShardExpertsPass(shards_per_chiplet=shards_per_chiplet, buffers=buffers))
    if hydra_skip_single and strategy != "hydra":
        raise FsedpError("--hydra-skip-single only applies to --strategy hydra", field="--hydra-skip-single")
    if strategy not in STRATEGIES:
        if mode != "static" or not trace:
            raise FsedpError(f"the {strategy} baseline compiles static programs: give --trace trace.npz",
                             field="--strategy")
        if order or direction:
            raise FsedpError("--order and --direction are FSE-DP policies", field="--order" if order else "--direction")
        return passes + [LowerBaselinePass(strategy=strategy, trace=trace, hydra_skip_single=hydra_skip_single)]
    s_order, s_direction, trajectory, rings = STRATEGIES[strategy]
    return passes + [
        VirtualizeStreamsPass(order=order or s_order, direction=direction or s_direction, trajectory=trajectory,
                              rings=rings),
        ScheduleStreamsPass(mode=mode, trace=trace or ""),
        LowerToDataflowPass(),
        ExpandDataflowPass(),
    ]


def run(args: argparse.Namespace) -> int:
    from fsedp_compiler.backends.emit import emit
    from fsedp_compiler.console import human_bytes, make_console
    from fsedp_compiler.dialects.chiplet import SYSTEM_ATTR
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.fileio import display_name, is_stdio, read_text
    from fsedp_compiler.ir import make_context, parse_module, print_module
    from fsedp_compiler.pipeline import run_passes, verify_each_default

    mode = args.mode or ("static" if args.trace else "dynamic")
    if mode == "static" and not args.trace:
        raise FsedpError("static mode needs a routing trace (--trace trace.npz)", field="--mode")
    if mode == "dynamic" and args.trace:
        raise FsedpError("a trace fixes the routing: use --mode static, or drop --trace for dynamic", field="--trace")
    if is_stdio(args.output):
        raise FsedpError("a program is a directory and cannot go to standard output; give a directory name",
                         field="-o")
    text = read_text(args.model, "MLIR file")
    ctx = make_context()
    module = parse_module(text, display_name(args.model), ctx)
    console = make_console(stderr=True)
    target = args.target
    if not target and SYSTEM_ATTR not in module.attributes:
        target = DEFAULT_TARGET
        console.print(f"fsedpc: no --target given; using the default preset '{DEFAULT_TARGET}'")
    passes = compile_passes(args.strategy, target=target, trace=args.trace, mode=mode,
                            shards_per_chiplet=args.shards_per_chiplet, buffers=args.buffers, order=args.order,
                            direction=args.direction, hydra_skip_single=args.hydra_skip_single)
    run_passes(ctx, module, passes, text=text, verify_each=args.verify_each or verify_each_default())
    final = print_module(module).encode()
    manifest = emit(module, args.output, extra_files={"final.mlir": final}, strategy=args.strategy)
    print_summary(module, manifest, make_console(), human_bytes)
    return 0


def print_summary(module, manifest, console, human_bytes) -> None:
    """Streams, DRAM and D2D bytes and the scheduler's estimated step time, per layer."""
    import numpy as np
    from rich.table import Table

    from fsedp_compiler.dialects import dataflow as df
    from fsedp_compiler.dialects.fsedp import StaticScheduleOp
    from fsedp_compiler.layers import layer_contexts

    t = manifest["target"]
    console.print(f"compiled {manifest['model']} for {t['name']} ({t['chiplets']} chiplets), {manifest['strategy']}, "
                  f"{manifest['mode']} mode"
                  + (f", {manifest['steps']} steps x {manifest['tokens']} tokens" if manifest["mode"] == "static" else ""))
    table = Table()
    static = manifest["mode"] == "static"
    cols = ["layer", "shards", "shard bytes"] + (["streams/step", "DRAM/step", "D2D/step", "est. step"] if static else [])
    for col in cols:
        table.add_column(col, justify="right")
    dram: dict[int, int] = {}
    d2d: dict[int, int] = {}
    for op in module.walk():
        if isinstance(op, df.InstructionsOp):
            cols_ = op.columns()
            layer = op.prop_int("layer")
            kind, arg = cols_["kind"], cols_["arg"]
            k = {name: df.KINDS.index(name) for name in ("loads", "load", "sends", "send", "toksend", "reduce")}
            moved = arg * cols_["n"]  # range ops: bytes per shard x shard count
            single = np.isin(kind, [k["send"], k["toksend"], k["reduce"]])
            dram[layer] = dram.get(layer, 0) + int(moved[kind == k["loads"]].sum() + arg[kind == k["load"]].sum())
            d2d[layer] = d2d.get(layer, 0) + int(moved[kind == k["sends"]].sum() + arg[single].sum())
    for c in layer_contexts(module):
        plan = c.plan
        row = [str(c.spec.index), str(plan.num_shards), human_bytes(plan.shard_bytes(0))]
        if static and isinstance(c.schedule_op, StaticScheduleOp):
            steps = c.schedule_op.prop_int("steps")
            row += [f"{len(c.schedule_op.prop_array('experts')) / steps:.1f}",
                    human_bytes(dram.get(c.spec.index, 0) / steps), human_bytes(d2d.get(c.spec.index, 0) / steps),
                    f"{np.mean(c.schedule_op.prop_array('estimated_ns')) / 1e3:.2f} us"]
        elif c.baseline_op is not None:
            steps = c.baseline_op.prop_int("steps")
            row += ["-", human_bytes(dram.get(c.spec.index, 0) / steps), human_bytes(d2d.get(c.spec.index, 0) / steps),
                    "-"]
        table.add_row(*row)
    console.print(table)
    files = manifest["programs"]
    console.print(f"wrote {len(files)} chiplet programs ({sum(f['instructions'] for f in files)} instructions), "
                  "program.json and final.mlir")
