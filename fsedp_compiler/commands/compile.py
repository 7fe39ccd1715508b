"""`fsedpc compile MODEL.mlir -o OUTDIR`: FSE-DP (or a baseline strategy, or per MoE layer the
fastest that fits: `--strategy auto`) down to per-chiplet ISA."""

from __future__ import annotations

import argparse

from fsedp_compiler.pipeline.compile import AutoBuild, compile_auto, compile_passes, last_lowering_left
from fsedp_compiler.strategies import AUTO, NAMES

DEFAULT_TARGET = "paper-2x2"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a moe model to per-chiplet instruction streams",
        description="Run attach-target, shard-experts, virtualize-streams, schedule-streams, lower-to-dataflow, "
        "expand-dataflow and emit-isa. With --trace the schedule is static (per routed step); without, "
        "dynamic (the controller schedules at run time). Writes OUTDIR/chiplet_<i>.bin, program.json and, "
        "for programs up to 1,000,000 instructions (--text), the text forms chiplet_<i>.fsa and final.mlir.",
    )
    p.add_argument("model", metavar="MODEL.mlir", help="input module ('-' for stdin)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--target", metavar="NAME|FILE.toml",
                   help=f"chiplet system (default: the module's own, else {DEFAULT_TARGET})")
    p.add_argument("--trace", metavar="TRACE.npz", help="routing trace (implies --mode static)")
    p.add_argument("--mode", choices=("static", "dynamic"), help="static needs --trace; default: static with a trace")
    p.add_argument("--shards-per-chiplet", type=int, default=0, metavar="G",
                   help="g: each expert is cut into g x chiplets shards (default 0: smallest that fits SRAM)")
    p.add_argument("--buffers", type=int, default=0, metavar="B", help="shard/tile buffers per chiplet (R4: >= 2; default 0: as many as fit in half the SRAM, 6..32 (64 when cut finer), with the shard size of 6)")
    p.add_argument("--strategy", default="fsedp", choices=NAMES,
                   help="FSE-DP, one of its ablations, a baseline (static only), or auto: per MoE layer the "
                        "fastest candidate that fits SRAM by the compiler's estimator (default: fsedp)")
    p.add_argument("--candidates", metavar="LIST",
                   help="--strategy auto: the strategies to choose from (default: all of them in static mode, "
                        "FSE-DP and its ablations in dynamic mode)")
    p.add_argument("--hydra-skip-single", action="store_true",
                   help="hydra as the authors' code runs it: experts routed one token are skipped (inexact)")
    p.add_argument("--order", choices=("paired", "work", "id"), help="global stream order (R6; overrides the strategy)")
    p.add_argument("--direction", choices=("per-shard", "balanced", "cw"),
                   help="ring direction policy (overrides the strategy): per-shard (each expert cw, ccw or every "
                        "shard the shorter way), balanced (one direction per expert), cw")
    p.add_argument("--text", choices=("auto", "always", "never"), default="auto",
                   help="write the programs' text forms (chiplet_<i>.fsa, final.mlir): auto (default) for programs "
                        "up to 1,000,000 instructions; the .bin is what runs, `fsedpc disasm` prints one")
    p.add_argument("--verify-each", action="store_true",
                   help="verify the whole module after every pass (debugging; default: once, at the end)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fsedp_compiler.backends.emit import TEXT_LIMIT, instruction_count
    from fsedp_compiler.console import human_bytes, make_console
    from fsedp_compiler.dialects.chiplet import SYSTEM_ATTR
    from fsedp_compiler.files.fileio import display_name, read_text
    from fsedp_compiler.ir.modules import make_context, parse_module, spec_from_module
    from fsedp_compiler.pipeline.driver import verify_each_default
    from fsedp_compiler.progress import RunProgress

    mode = check_options(args)
    auto = args.strategy == AUTO
    source = read_text(args.model, "MLIR file")
    ctx = make_context()
    module = parse_module(source, display_name(args.model), ctx)
    spec_from_module(module, source)  # the model is whole (a module with its name and layers) before any pass
    console = make_console(stderr=True)
    target = args.target
    if not target and SYSTEM_ATTR not in module.attributes:
        target = DEFAULT_TARGET
        console.print(f"fsedpc: no --target given; using the default preset '{DEFAULT_TARGET}'")
    verify_each = args.verify_each or verify_each_default()
    build = None
    passes = [] if auto else compile_passes(args.strategy, target=target, trace=args.trace, mode=mode,
                                            shards_per_chiplet=args.shards_per_chiplet, buffers=args.buffers,
                                            order=args.order, direction=args.direction,
                                            hydra_skip_single=args.hydra_skip_single)
    # a bar on a terminal, else a status line every 10 s: a static compile of a big model takes a while
    with RunProgress("compile", total=(1 if auto else len(passes)) + 2, unit="stage") as progress:
        step = _Compile(ctx, args, source, verify_each, progress)
        if auto:
            progress.begin("choosing each layer's strategy (auto)")
            defer = mode == "static" and args.text != "always"
            build = compile_auto(ctx, module, target=target, trace=args.trace, mode=mode,
                                 shards_per_chiplet=args.shards_per_chiplet, buffers=args.buffers,
                                 candidates=args.candidates, verify_each=verify_each, text=source, defer=defer)
            module = build.module
            manifest, moved = step.stream(module, build) if defer else (step.write_in_ir(module, build), None)
        else:
            manifest, moved = step.lower_and_write(module, passes, mode)
    if not step.text_forms and args.text == "auto":
        count = sum(f["instructions"] for f in manifest["programs"]) if moved is not None else instruction_count(module)
        console.print(f"fsedpc: {count:,} instructions, more than {TEXT_LIMIT:,}: wrote the .bin "
                      "programs without their text forms (.fsa, final.mlir); --text always writes them, `fsedpc "
                      "disasm OUTDIR/chiplet_<i>.bin` prints one")
    out = make_console()
    print_summary(module, manifest, out, human_bytes, moved)
    if build is not None:
        print_choices(build, manifest["target"]["chiplet"]["sram_mib"], out)
    return 0


def check_options(args: argparse.Namespace) -> str:
    """The compile's mode (static or dynamic), after rejecting option combinations that conflict."""
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.fileio import is_stdio

    auto = args.strategy == AUTO
    mode = args.mode or ("static" if args.trace else "dynamic")
    if mode == "static" and not args.trace:
        raise FsedpError("static mode needs a routing trace (--trace trace.npz)", field="--mode")
    if mode == "dynamic" and args.trace and not auto:
        raise FsedpError("a trace fixes the routing: use --mode static, or drop --trace for dynamic", field="--trace")
    if args.candidates and not auto:
        raise FsedpError("--candidates only applies to --strategy auto", field="--candidates")
    if auto and (args.order or args.direction or args.hydra_skip_single):
        flag = "--order" if args.order else "--direction" if args.direction else "--hydra-skip-single"
        raise FsedpError(f"{flag} picks one strategy's policy; --strategy auto compares the candidates' own",
                         field=flag)
    if is_stdio(args.output):
        raise FsedpError("a program is a directory and cannot go to standard output; give a directory name",
                         field="-o")
    return mode


class _Compile:
    """The passes and emit-isa of one `fsedpc compile`: a static program without its text forms
    has its last lowering (expand-dataflow, lower-baseline's instructions) left to emit-isa, which
    makes it a step at a time into the `.bin` files; `text_forms` says whether they were written."""

    def __init__(self, ctx, args: argparse.Namespace, source: str, verify_each: bool, progress) -> None:
        self.ctx, self.args, self.source, self.verify_each, self.progress = ctx, args, source, verify_each, progress
        self.text_forms = False

    def _run(self, module, passes: list) -> None:
        from fsedp_compiler.pipeline.driver import run_passes

        run_passes(self.ctx, module, passes, text=self.source, verify_each=self.verify_each,
                   before=lambda p, _: self.progress.begin(f"pass {p.name}"))

    def lower_and_write(self, module, passes: list, mode: str) -> tuple[dict, dict[int, list[int]] | None]:
        """Run `passes` and write the program; returns the manifest and, when emit-isa made the
        last lowering, each layer's [DRAM, D2D] bytes (else None: the module holds them)."""
        from fsedp_compiler.backends.emit import TEXT_LIMIT, expansion_bound

        head = deferred_passes(passes, mode, self.args.text)
        if head is None:
            self._run(module, passes)
            return self.write_in_ir(module), None
        self._run(module, head)
        bound = expansion_bound(module) if self.args.text == "auto" else None
        if bound is not None and bound <= TEXT_LIMIT:  # surely small: lowered here, as with its text forms
            self._run(module, passes[-1:])
            return self.write_in_ir(module), None
        if len(head) < len(passes):
            self.progress.begin(f"pass {passes[-1].name} (a step at a time, in emit-isa)")
        return self.stream(module)

    def stream(self, module, build: AutoBuild | None = None) -> tuple[dict, dict[int, list[int]] | None]:
        """Write a static program whose last lowering emit-isa makes a step at a time; with `--text
        auto` a program small after all gets what emit-isa made into the IR and its text forms."""
        from fsedp_compiler.backends.emit import TEXT_LIMIT, FitsTextForms, emit
        from fsedp_compiler.ir.modules import verify_module

        self.progress.begin("without the text forms (--text)")
        self.progress.begin("writing the program (emit-isa)")
        moved: dict[int, list[int]] = {}
        try:
            return emit(module, self.args.output, strategy=self.args.strategy, text=False, moved=moved,
                        layer_strategies=build.layer_strategies if build else None,
                        text_limit=TEXT_LIMIT if self.args.text == "auto" else None), moved
        except FitsTextForms as small:  # small after all: what emit-isa made goes into the IR
            small.made.into_ir(module)
            verify_module(module, self.source)
            return self.write_in_ir(module, build), None

    def write_in_ir(self, module, build: AutoBuild | None = None) -> dict:
        """Write a program the module holds whole, with its text forms when `--text` says so."""
        from fsedp_compiler.backends.emit import emit, write_text
        from fsedp_compiler.ir.modules import print_module

        self.text_forms = write_text(module, self.args.text)
        self.progress.begin("printing final.mlir" if self.text_forms else "without the text forms (--text)")
        extra = {"final.mlir": print_module(module).encode()} if self.text_forms else {}
        self.progress.begin("writing the program (emit-isa)")
        return emit(module, self.args.output, extra_files=extra, strategy=self.args.strategy,
                    layer_strategies=build.layer_strategies if build else None, text=self.text_forms)


def print_choices(build: AutoBuild, sram_mib: float, console) -> None:
    """Per MoE layer: the chosen strategy, its estimated step time and binding resource, the
    runner-up and its time, the candidates left out for not fitting SRAM and, when auto left
    some unestimated for their lower bounds (`pipeline/auto.py`), how many and the lowest bound."""
    from rich.table import Table

    first = build.choices[0]
    console.print(f"auto: per MoE layer, the fastest of {first.considered} candidates whose plan fits the "
                  f"{sram_mib:g} MiB of SRAM per chiplet, by the compiler's estimator on {build.routing}")
    from fsedp_compiler.strategies import ALL

    table = Table()
    pruned = any(c.slower for c in build.choices)
    bounded = any(c.cannot_fit for c in build.choices)
    for col in ("layer", "chosen", "est. step", "binds", "runner-up", "est. step ", "over SRAM (left out)",
                *(("not estimated (bound)",) if pruned else ())):
        table.add_column(col, justify="right" if col.startswith(("layer", "est.")) else "left")
    tied = False
    for c in build.choices:
        r = c.runner_up
        tie = r is not None and r.total_ns == c.chosen.total_ns
        tied |= tie
        over = ", ".join(text for _, text in sorted(
            [(ALL.index(o.strategy), f"{o.strategy} ({max(o.estimate.peak_bytes) / 2**20:.2f} MiB)") for o in c.over_sram]
            + [(ALL.index(p.strategy), f"{p.strategy} (>= {p.over_sram_bytes / 2**20:.2f} MiB)")
               for p in c.cannot_fit]))
        table.add_row(str(c.layer), c.chosen.strategy, f"{c.chosen.step_ns / 1e3:,.3f} us", c.chosen.binds_text,
                      "-" if r is None else r.strategy + (" (tie)" if tie else ""),
                      "-" if r is None else f"{r.step_ns / 1e3:,.3f} us", over or "-",
                      *((not_estimated(c),) if pruned else ()))
    console.print(table)
    console.print("binds: the busiest resource when it is busy >= 80% of the layer's time, else tail (dependencies, "
                  "buffers, latency)" + ("; ties go to the earlier candidate (fsedp, its ablations, then the "
                                         "baselines)" if tied else ""))
    if bounded:
        console.print("over SRAM (>= X MiB): not estimated, as the tiles it must hold at once to compute an expert "
                      "(its whole expert) already exceed the SRAM (FSEDPC_AUTO_PRUNE=0 estimates it)")
    if pruned:
        console.print("not estimated: candidates whose lower bound on the step time (their busiest DRAM channel, "
                      "link or compute engine) is above the runner-up's estimate, so neither chosen nor runner-up "
                      "whether or not they fit SRAM; how many, and the lowest bound (FSEDPC_AUTO_PRUNE=0 "
                      "estimates them all)")


def not_estimated(choice) -> str:
    """A layer's candidates left unestimated for their time bounds: `3 (>= 12.500 us)`, or `-`."""
    if not choice.slower:
        return "-"
    return f"{len(choice.slower)} (>= {min(p.step_ns for p in choice.slower) / 1e3:,.3f} us)"


def deferred_passes(passes: list, mode: str, text: str) -> list | None:
    """The pipeline with its last lowering left to emit-isa (`last_lowering_left`): static mode
    without `--text always`. None: nothing is left to emit-isa."""
    if mode != "static" or text == "always":
        return None
    return last_lowering_left(passes)


def print_summary(module, manifest, console, human_bytes, moved: dict[int, list[int]] | None = None) -> None:
    """Streams, DRAM and D2D bytes and the scheduler's estimated step time, per layer. `moved`:
    each layer's [DRAM, D2D] bytes when the module does not hold its instructions (emit-isa
    expanded them); else they are summed from its `dataflow.instructions`."""
    import numpy as np
    from rich.table import Table

    from fsedp_compiler.backends.emit import moved_bytes
    from fsedp_compiler.dialects import dataflow as df
    from fsedp_compiler.dialects.fsedp import StaticScheduleOp
    from fsedp_compiler.ir.layers import layer_contexts

    t = manifest["target"]
    console.print(f"compiled {manifest['model']} for {t['name']} ({t['chiplets']} chiplets), {manifest['strategy']}, "
                  f"{manifest['mode']} mode"
                  + (f", {manifest['steps']} steps x {manifest['tokens']} tokens" if manifest["mode"] == "static" else ""))
    table = Table()
    static = manifest["mode"] == "static"
    per_layer = {entry["index"]: entry.get("strategy") for entry in manifest["layers"]}
    mixed = manifest["strategy"] == "auto"
    cols = (["layer"] + (["strategy"] if mixed else []) + ["shards", "shard bytes"]
            + (["streams/step", "DRAM/step", "D2D/step", "est. step"] if static else []))
    for col in cols:
        table.add_column(col, justify="right")
    dram: dict[int, int] = {}
    d2d: dict[int, int] = {}
    if moved is None:
        moved = {}
        for op in module.walk():
            if isinstance(op, df.InstructionsOp):
                entry = moved.setdefault(op.prop_int("layer"), [0, 0])
                for i, amount in enumerate(moved_bytes(op.columns())):
                    entry[i] += amount
    for layer, (dram_bytes, d2d_bytes) in moved.items():
        dram[layer], d2d[layer] = dram_bytes, d2d_bytes
    for c in layer_contexts(module):
        plan = c.plan
        row = ([str(c.spec.index)] + ([str(per_layer.get(c.spec.index))] if mixed else [])
               + [str(plan.num_shards), human_bytes(plan.shard_bytes(0))])
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
    text = all("fsa" in f for f in files)
    console.print(f"wrote {len(files)} chiplet programs ({sum(f['instructions'] for f in files)} instructions"
                  + (", .bin and .fsa" if text else ", .bin only") + "), program.json"
                  + (" and final.mlir" if text else ""))
