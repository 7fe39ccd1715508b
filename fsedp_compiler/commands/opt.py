"""`fsedpc opt`: run a pass pipeline on a module, in the style of `xdsl-opt` / `mlir-opt`.

It reuses xDSL's pipeline parser (`PassPipeline.parse_spec`) and passes, and adds what pass
debugging needs: IR dumps before/after chosen passes (on stderr, like `mlir-opt`), verification
after each pass (naming the pass and the op's location), per-pass timing and `--list-passes`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TextIO

from fsedp_compiler.errors import FsedpError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "opt",
        help="run a pass pipeline on an MLIR file (xdsl-opt style)",
        description="Parse MODEL.mlir, run the passes of -p in order and print the result. "
        "Options of a pass go in braces, space-separated: "
        "-p 'attach-target{target=ring-8},shard-experts{shards-per-chiplet=2}'.",
    )
    p.add_argument("input", nargs="?", default="-", metavar="MODEL.mlir", help="input file ('-' for stdin)")
    p.add_argument("-p", "--passes", default="", metavar="PIPELINE", help="comma-separated pass pipeline")
    p.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="write the result here (atomically) instead of stdout ('-')")
    p.add_argument("--list-passes", action="store_true", help="list the passes with their options and exit")
    p.add_argument("--print-ir-after-all", action="store_true", help="dump the IR after every pass (stderr)")
    p.add_argument("--print-ir-before", action="append", default=[], metavar="PASS", help="dump the IR before PASS (repeatable)")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="PASS", help="dump the IR after PASS (repeatable)")
    p.add_argument("--verify-each", action=argparse.BooleanOptionalAction, default=True,
                   help="verify the module after each pass (default: on)")
    p.add_argument("--pass-timing", action="store_true", help="report the wall time of each pass (stderr)")
    p.add_argument("--print-op-generic", action="store_true", help="print ops in the generic form")
    p.add_argument("--split-input-file", action="store_true", help="treat '// -----' separated chunks as separate inputs")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="print an input error to stdout and exit 0 (for FileCheck tests of diagnostics)")
    p.set_defaults(func=run)


def list_passes(out: TextIO) -> None:
    """Each pass with its one-line description and options (kebab-case, type, default)."""
    from fsedp_compiler.passes.registry import get_all_passes

    for name, factory in sorted(get_all_passes().items()):
        cls = factory()
        doc = (cls.__doc__ or "").strip().splitlines()
        out.write(f"{name}: {doc[0] if doc else ''}\n")
        for field in dataclasses.fields(cls):
            option = field.name.replace("_", "-")
            typ = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
            if field.default is not dataclasses.MISSING:
                out.write(f"    {option}: {typ} = {field.default!r}\n")
            else:
                out.write(f"    {option}: {typ} (required)\n")


def _parse_pipeline(spec: str):
    from xdsl.passes import PassPipeline
    from xdsl.utils.exceptions import ArgSpecParseError

    from fsedp_compiler.passes.registry import get_all_passes

    try:
        return PassPipeline.parse_spec(get_all_passes(), spec).passes
    except (ValueError, ArgSpecParseError) as err:  # ArgSpecParseError is a BaseException
        hint = f"; known passes: {', '.join(get_all_passes())}" if "Unrecognized pass" in str(err) else ""
        raise FsedpError(f"bad pass pipeline '{spec}': {err}{hint}", field="-p") from None


def _chunks(text: str, split: bool) -> list[str]:
    """Input chunks; each is padded with newlines so error lines match the whole file."""
    if not split:
        return [text]
    parts, out, offset = text.split("// -----"), [], 0
    for part in parts:
        out.append("\n" * offset + part)
        offset += part.count("\n")
    return out


def run(args: argparse.Namespace) -> int:
    if args.list_passes:
        list_passes(sys.stdout)
        return 0
    from fsedp_compiler.files.fileio import check_output_path, display_name, read_text, write_output
    from fsedp_compiler.ir.modules import make_context, parse_module, print_module
    from fsedp_compiler.pipeline.driver import run_passes

    passes = _parse_pipeline(args.passes) if args.passes else ()
    known = {p.name for p in passes}
    for flag, names in (("--print-ir-before", args.print_ir_before), ("--print-ir-after", args.print_ir_after)):
        for name in names:
            if name not in known:
                raise FsedpError(f"pass '{name}' is not in the pipeline", field=flag)
    check_output_path(args.output)  # before any work
    path = display_name(args.input)
    text = read_text(args.input, "MLIR file")

    outputs: list[str] = []
    timings: list[tuple[str, float]] = []
    for chunk in _chunks(text, args.split_input_file):
        try:
            ctx = make_context()
            module = parse_module(chunk, path, ctx)
            timings += run_passes(
                ctx, module, passes, text=chunk, verify_each=args.verify_each,
                before=lambda p, m: _dump(f"IR Dump Before {p.name}", m, args.print_op_generic)
                if p.name in args.print_ir_before else None,
                after=lambda p, m: _dump(f"IR Dump After {p.name}", m, args.print_op_generic)
                if args.print_ir_after_all or p.name in args.print_ir_after else None,
            )
            outputs.append(print_module(module, generic=args.print_op_generic))
        except FsedpError as err:
            if not args.verify_diagnostics:
                raise
            outputs.append(f"{err}\n")
    if args.pass_timing:
        _report_timing(timings)
    write_output(args.output, "// -----\n".join(outputs))
    return 0


def _dump(title: str, module, generic: bool) -> None:
    from fsedp_compiler.ir.modules import print_module

    sys.stderr.write(f"// -----// {title} //----- //\n{print_module(module, generic=generic)}\n")


def _report_timing(timings: list[tuple[str, float]]) -> None:
    total = sum(t for _, t in timings) or 1e-12
    err = sys.stderr
    err.write("===-------------------------------------------------------------===\n")
    err.write("                      ... Pass execution timing report ...\n")
    err.write("===-------------------------------------------------------------===\n")
    err.write(f"  Total Execution Time: {total:.4f} seconds\n\n   Wall Time  (%)   Name\n")
    for name, t in timings:
        err.write(f"  {t:10.4f} ({100 * t / total:5.1f}%)  {name}\n")
    err.write(f"  {total:10.4f} (100.0%)  Total\n")
