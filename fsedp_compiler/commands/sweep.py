"""`fsedpc sweep SPEC -o STORE`: run a design-space sweep; `fsedpc sweep report STORE`: study it."""

from __future__ import annotations

import argparse

USAGE = """fsedpc sweep SPEC.toml -o STORE [--jobs N] [--executor local|ray] [--address ADDR] [--dry-run]
       fsedpc sweep report STORE [--json FILE] [--figures DIR | --no-figures] [--axes X,Y]"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a design-space sweep (models x targets x parameters x strategies) or report on one",
        usage=USAGE,
        description="Expand a sweep spec (TOML: models, targets with parameter overrides, tokens, steps, "
        "strategies, buffers, routing, seeds, dtypes, MoE layers) into points, compile and simulate each "
        "as `fsedpc bench` does, and append one row per point to the store (STORE/rows.jsonl). A rerun "
        "skips the points already done. `fsedpc sweep report STORE` prints the study tables and draws "
        "its figures.",
    )
    p.add_argument("spec", metavar="SPEC.toml|report", help="the sweep spec, or 'report' followed by STORE")
    p.add_argument("store", metavar="STORE", nargs="?", help=argparse.SUPPRESS)
    run_opts = p.add_argument_group("running a sweep")
    run_opts.add_argument("-o", "--output", metavar="STORE", help="the results store (a directory)")
    run_opts.add_argument("--jobs", "-j", type=int, metavar="N",
                          help="worker processes (local) or CPUs of a new local Ray instance (default: CPU count)")
    run_opts.add_argument("--executor", choices=("local", "ray"), default="local",
                          help="local: a process pool on this machine (default); ray: Ray tasks")
    run_opts.add_argument("--address", metavar="ADDR",
                          help="Ray cluster to use ('auto': the one `ray start --head` started here; "
                          "ray://HOST:10001 for Ray Client); default: start a local instance")
    run_opts.add_argument("--dry-run", action="store_true", help="print the number of points and the work, run nothing")
    run_opts.add_argument("--status-every", type=float, default=10.0, metavar="S",
                          help="seconds between status lines when stderr is not a terminal (default 10)")
    rep = p.add_argument_group("fsedpc sweep report STORE")
    rep.add_argument("--json", metavar="FILE", help="write the rows (ratios filled in) as JSON ('-': stdout)")
    rep.add_argument("--figures", metavar="DIR", help="where the figures go (default: STORE/figures)")
    rep.add_argument("--no-figures", action="store_true", help="tables only")
    rep.add_argument("--axes", metavar="X,Y", help="the two swept axes of the heatmaps (default: chosen)")
    p.set_defaults(func=run)


_RUN_ONLY = ("output", "jobs", "address", "dry_run")
_REPORT_ONLY = ("json", "figures", "no_figures", "axes")


def run(args: argparse.Namespace) -> int:
    from fsedp_compiler.errors import FsedpError

    report = args.spec == "report"
    for name in _RUN_ONLY if report else _REPORT_ONLY:
        if getattr(args, name) not in (None, False):
            option = "--" + name.replace("_", "-") if name != "output" else "-o"
            raise FsedpError(f"only for {'running a sweep' if report else 'fsedpc sweep report STORE'}",
                             field=option)
    if report:
        if not args.store:
            raise FsedpError("fsedpc sweep report needs the store: fsedpc sweep report STORE", field="STORE")
        return run_report(args)
    if args.store:
        raise FsedpError(f"unexpected argument '{args.store}'; the store is given with -o STORE", field="STORE")
    if args.executor != "ray" and args.address:
        raise FsedpError("only with --executor ray", field="--address")
    return run_sweep(args)


def run_sweep(args: argparse.Namespace) -> int:
    from fsedp_compiler.console import make_console
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.sweep.executors import default_jobs
    from fsedp_compiler.sweep.points import estimate_seconds, expand, human_duration
    from fsedp_compiler.sweep.run import pending, run_sweep as run_points
    from fsedp_compiler.sweep.spec import load_spec

    if args.jobs is not None and args.jobs < 1:
        raise FsedpError(f"must be >= 1, got {args.jobs}", field="--jobs")
    if not args.dry_run and not args.output:
        raise FsedpError("give the results store: -o STORE (a directory; rerunning into it resumes)", field="-o")
    spec = load_spec(args.spec)
    points = expand(spec)
    err = make_console(stderr=True)
    if args.dry_run:
        todo, done = pending(points, args.output) if args.output else (points, 0)
        measured = _measured(args.output, points) if args.output else []
        jobs = args.jobs or default_jobs()
        core = estimate_seconds(todo, measured)
        per_grid = {}
        for p in points:
            per_grid[p.params["grid"]] = per_grid.get(p.params["grid"], 0) + 1
        out = make_console()
        out.print(f"{len(points)} points")
        out.print("  " + ", ".join(f"grid {g}: {n}" for g, n in per_grid.items()))
        models = len({p.params["model_file"] for p in points})
        targets = len({p.params["target"] for p in points})
        groups = len({p.group for p in points})
        out.print(f"  {models} model(s) x {targets} target(s); {groups} comparisons of "
                  f"{len({p.strategy for p in points})} strategies on the same inputs")
        if args.output:
            out.print(f"  {done} already in {args.output}, {len(todo)} to run")
        basis = "the store's measured rows" if measured else "this machine's typical rate"
        out.print(f"  work: {len(todo)} compiles + simulations; "
                  f"estimated {human_duration(core)} of CPU, ~{human_duration(core / jobs)} on {jobs} "
                  f"worker(s) ({basis})")
        return 0
    result = run_points(points, args.output, spec.text, executor=args.executor, jobs=args.jobs,
                        address=args.address, console=err, every=args.status_every)
    err.print(f"{result.ran} points run in {human_duration(result.seconds)} ({result.points_per_minute:.1f} "
              f"points/min), {result.failed} failed, {result.skipped} already done; store: {args.output}")
    failed = _failed(args.output, points)
    if failed:
        err.print(f"{failed} points of the spec failed (crashes are tried again on the next run); see them with: "
                  f"fsedpc sweep report {args.output}")
        return 1
    return 0


def _failed(store: str, points: list) -> int:
    """How many of the spec's points have an error as their latest row."""
    from fsedp_compiler.sweep.store import latest, read_rows

    rows = latest(read_rows(store))
    return sum(1 for p in points if p.key in rows and rows[p.key]["status"] != "ok")


def _measured(store: str, points: list) -> list[tuple[float, float]]:
    """(work, seconds) of the store's finished rows, to calibrate the estimate."""
    from pathlib import Path

    from fsedp_compiler.sweep.store import read_rows

    if not Path(store).is_dir():
        return []
    work = {p.key: p.work for p in points}
    return [(work[r["key"]], r["seconds"]) for r in read_rows(store)
            if r["status"] == "ok" and r["key"] in work and r.get("seconds")]


def run_report(args: argparse.Namespace) -> int:
    import json
    import os

    from fsedp_compiler.console import make_console
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.fileio import atomic_directory, check_outputs, is_stdio, write_outputs
    from fsedp_compiler.sweep.report import load_rows, param_keys, print_report, report_json

    check_outputs([args.json])
    rows = load_rows(args.store)
    if not rows:
        raise FsedpError("the store has no rows yet", path=args.store)
    wanted = None
    if args.axes:
        wanted = tuple(a.strip() for a in args.axes.split(","))
        known = param_keys(rows)
        if len(wanted) != 2 or any(a not in known for a in wanted):
            raise FsedpError(f"expected two parameters X,Y among {', '.join(known)}; got '{args.axes}'",
                             field="--axes")
    figures = None
    if not args.no_figures:
        from fsedp_compiler.sweep.figures import render_figures

        figures = render_figures(rows, wanted)  # type: ignore[arg-type]
    if args.json:
        write_outputs([(args.json, json.dumps(report_json(args.store, rows), indent=1) + "\n")])
    console = make_console(stderr=is_stdio(args.json))
    print_report(rows, console, args.store)
    if figures is not None:
        where = args.figures or os.path.join(args.store, "figures")
        with atomic_directory(where, marker="figures.md") as tmp:
            write_outputs([(tmp / name, data) for name, data in figures.items()])
        console.print(f"figures: {where}/figures.md ({', '.join(n for n in figures if n.endswith('.png'))})")
    return 0
