"""Reading a store for a study: the latest row of each point, the ratios that relate points of one
group (FSE-DP's speedup and SRAM saving, as `fsedpc bench` computes them; each strategy's step
time over the group's best), the swept axes, and the tables `fsedpc sweep report` prints.

The best of a group, and its best strong baseline, are the fastest plans that fit SRAM
(`compare.py`): a plan over SRAM keeps its ratio (below 1 when it is faster) and is marked."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from typing import Any

from fsedp_compiler.pipeline.compare import TAIL, best_strong, binding, binding_text, fastest
from fsedp_compiler.sweep.store import latest, read_rows

#: Row fields that describe the point (candidates for axes), in the order tables show them.
PARAMS: tuple[str, ...] = ("model", "moe_layers", "dtype", "dense", "target", "chiplets", "topology", "dram_chiplets",
                           "link.gbps", "chiplet.dram_gbps_per_channel", "chiplet.sram_mib", "link_dram_ratio",
                           "routing", "seed", "tokens", "steps", "buffers", "shards_per_chiplet")
#: Fields of a row that are neither parameters nor results (never axes).
_NOT_PARAMS = {"key", "group", "status", "error", "error_kind", "sweep", "grid", "model_file", "strategy", "skew",
               "locality", "trace", "functional", "hydra_skip_single", "seconds", "host", "code"}
RESOURCES = ("dram", "link", "compute")
#: What can bind a point: a resource, or its tail (`compare.binding`).
BINDS = (*RESOURCES, TAIL)
#: Fields the report adds to each row (never parameters).
ADDED = ("ratio_to_best", "best", "best_strong")


def load_rows(store: str) -> list[dict[str, Any]]:
    """The latest row of every point in the store with ratios filled in, sorted by parameters then
    strategy (the same order whichever executor finished them in whichever order)."""
    out = [dict(r) for r in latest(read_rows(store)).values()]
    keys = param_keys(out)
    rank = strategy_rank()
    out.sort(key=lambda r: (tuple(sort_key(value(r, k)) for k in keys), rank.get(r["strategy"], len(rank)),
                            r["strategy"], r["key"]))
    fill_ratios(out)
    return out


def strategy_rank() -> dict[str, int]:
    """FSE-DP, its ablations, the baselines, then auto, as `fsedpc compile --help` lists them."""
    from fsedp_compiler.strategies import NAMES

    return {s: i for i, s in enumerate(NAMES)}


def fill_ratios(rows: list[dict[str, Any]]) -> None:
    """Per group (same inputs but the strategy): `speedup_of_fsedp` and `sram_saving_of_fsedp` as
    `bench.add_ratios` computes them, `best` (the fastest plan that fits SRAM; None if none does),
    `ratio_to_best` (step time over the best's), `best_strong` (the fastest strong baseline that fits)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            groups[r["group"]].append(r)
    for members in groups.values():
        f = next((r for r in members if r["strategy"] == "fsedp"), None)
        best = fastest(members).best
        strong = best_strong(members).best
        for r in members:
            r["speedup_of_fsedp"] = round(r["makespan_ns"] / f["makespan_ns"], 6) if f and f["makespan_ns"] else None
            peak, fpeak = max(r["sram_peak_bytes"]), max(f["sram_peak_bytes"]) if f else 0
            r["sram_saving_of_fsedp"] = round(1 - fpeak / peak, 6) if f and peak else None
            r["ratio_to_best"] = (round(r["makespan_ns"] / best["makespan_ns"], 6)
                                  if best is not None and best["makespan_ns"] else None)
            r["best"] = None if best is None else best["strategy"]
            r["best_strong"] = None if strong is None else strong["strategy"]


def base_target(name: str) -> str:
    """`paper-2x2[link.gbps=64]` → `paper-2x2`."""
    return re.sub(r"\[.*\]$", "", name)


def param_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Every parameter field of the rows: the known ones, then target overrides (e.g. `dram_at`)."""
    seen = {k for r in rows for k in r}
    known = [k for k in PARAMS if k in seen]
    from fsedp_compiler.bench.runner import ROW_KEYS

    extra = sorted(k for k in seen if k not in PARAMS and k not in _NOT_PARAMS and k not in ROW_KEYS
                   and k not in ADDED)
    return known + extra


def value(row: dict[str, Any], key: str) -> Any:
    """A row's value of a parameter, hashable (lists as tuples); targets by their base name."""
    v = row.get(key)
    if key == "target" and isinstance(v, str):
        return base_target(v)
    return tuple(v) if isinstance(v, list) else v


def axes(rows: list[dict[str, Any]]) -> list[str]:
    """The parameters that take more than one value in the rows (what the sweep varied)."""
    return [k for k in param_keys(rows) if len({json.dumps(value(r, k), default=str) for r in rows}) > 1]


#: Figures of the target that rows record beside its name: shown in tables only when the target
#: and its overrides do not already say them.
DERIVED = ("chiplets", "topology", "dram_chiplets", "link.gbps", "chiplet.dram_gbps_per_channel", "chiplet.sram_mib")


def table_axes(rows: list[dict[str, Any]]) -> list[str]:
    """The swept axes worth a column: `axes` without the target figures that follow from the target
    and the overridden parameters (e.g. `chiplets` when two presets are swept)."""
    varied = axes(rows)
    overrides = [k for k in param_keys(rows) if k not in PARAMS]
    keep = []
    for k in varied:
        if k in DERIVED and k not in overrides:
            seen: dict[str, str] = {}
            for r in rows:
                cause = json.dumps([value(r, "target")] + [value(r, o) for o in overrides], default=str)
                seen.setdefault(cause, json.dumps(value(r, k), default=str))
                if seen[cause] != json.dumps(value(r, k), default=str):
                    break
            else:
                continue  # determined by the target and the overrides
        keep.append(k)
    return keep


def numeric(rows: list[dict[str, Any]], key: str) -> bool:
    return all(isinstance(value(r, key), (int, float)) and not isinstance(value(r, key), bool)
               for r in rows if value(r, key) is not None)


def strategies(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["strategy"] for r in rows))


def groups(rows: list[dict[str, Any]], varied: list[str]) -> list[tuple[tuple[Any, ...], dict[str, dict[str, Any]]]]:
    """(axis values, {strategy: row}) per group of finished rows, sorted by the axis values."""
    out: dict[str, tuple[tuple[Any, ...], dict[str, dict[str, Any]]]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        vals = tuple(value(r, k) for k in varied)
        out.setdefault(r["group"], (vals, {}))[1][r["strategy"]] = r
    return sorted(out.values(), key=lambda g: tuple(sort_key(v) for v in g[0]))


def sort_key(v: Any) -> tuple[int, Any]:
    """Numbers by value before everything else by its text (None last)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v)
    return (2, "") if v is None else (1, str(v))


def geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy: points, points over SRAM, wins (the best of its group), geometric-mean and
    worst ratio to the best, what binds its points."""
    out = []
    for s in strategies(rows):
        mine = [r for r in rows if r["strategy"] == s and r["status"] == "ok"]
        ratios = [r["ratio_to_best"] for r in mine if r.get("ratio_to_best")]
        binds = Counter(binding(r["max_busy"]) for r in mine)
        out.append({"strategy": s, "points": len(mine), "failed": sum(r["strategy"] == s and r["status"] != "ok"
                                                                      for r in rows),
                    "over_sram": sum(not r["sram_fits"] for r in mine),
                    "wins": sum(r["best"] == s for r in mine), "geomean_ratio_to_best": geomean(ratios),
                    "worst_ratio_to_best": max(ratios) if ratios else None,
                    "binds": {k: binds.get(k, 0) for k in BINDS}})
    return out


def report_json(store: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What `fsedpc sweep report --json` writes: the rows (ratios filled in), axes and per-strategy summary."""
    return {"format": "fsedpc-sweep-report", "version": 1, "store": store, "axes": axes(rows),
            "strategies": strategies(rows), "points": len(rows),
            "failed": sum(r["status"] != "ok" for r in rows), "summary": summary(rows), "rows": rows}


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def print_report(rows: list[dict[str, Any]], console: Any, store: str, limit: int = 200) -> None:
    """The study tables: what was swept, each group's ratio to the best per strategy, a summary per
    strategy, and the failures."""
    from rich.markup import escape
    from rich.table import Table

    varied = axes(rows)
    names = strategies(rows)
    columns = table_axes(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    console.print(f"{store}: {len(rows)} points, {len(ok)} finished, {len(failed)} failed; strategies "
                  f"{', '.join(names)}")
    for k in varied:
        vals = sorted({value(r, k) for r in rows}, key=sort_key)
        console.print(escape(f"  {k}: {', '.join(fmt(v) for v in vals)}"), soft_wrap=True)
    fixed = [k for k in param_keys(rows) if k not in varied and rows]
    if fixed:
        console.print(escape("  fixed: " + ", ".join(f"{k}={fmt(value(rows[0], k))}" for k in fixed)), soft_wrap=True)
    table = Table(title="step time over the fastest plan of the same point that fits SRAM (1.00 = the best; "
                        "† = over SRAM: shown, never the best)")
    for k in columns:
        table.add_column(k, justify="right")
    for s in names:
        table.add_column(s, justify="right")
    numbers = ("fsedp step (us)", "fsedp speedup over best strong")
    for col in ("best", "best strong (binds)", "fsedp step (us)", "fsedp binds", "fsedp speedup over best strong"):
        table.add_column(col, justify="right" if col in numbers else "left")
    grouped = groups(rows, columns)
    for vals, members in grouped[:limit]:
        cells = []
        for s in names:
            r = members.get(s)
            cells.append(_cell(r, r is not None and r["best"] == s))
        r0 = next(iter(members.values()))
        f = members.get("fsedp")
        strong = members.get(r0["best_strong"]) if r0["best_strong"] else None
        table.add_row(*(escape(fmt(v)) for v in vals), *cells, r0["best"] or "- (none fits)",
                      "-" if strong is None else f"{strong['strategy']} ({binding_text(strong['max_busy'])})",
                      "-" if f is None else f"{f['step_ns'] / 1e3:,.2f}",
                      "-" if f is None else binding_text(f["max_busy"]),
                      "-" if f is None or strong is None or not f["makespan_ns"] else
                      f"{strong['makespan_ns'] / f['makespan_ns']:.3f}x")
    if not console.is_terminal:  # a file or a pipe: whole rows rather than cells cut to 200 columns
        from rich.measure import Measurement

        wide = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, wide)
    console.print(table)
    if len(grouped) > limit:
        console.print(f"({len(grouped) - limit} more groups: --json has every row)")
    stable = Table(title="per strategy")
    for col in ("strategy", "points", "failed", "over SRAM", "wins", "geomean ratio to best", "worst",
                "binds dram/link/compute/tail"):
        stable.add_column(col, justify="left" if col == "strategy" else "right")
    for s in summary(rows):
        g, w = s["geomean_ratio_to_best"], s["worst_ratio_to_best"]
        stable.add_row(s["strategy"], str(s["points"]), str(s["failed"]), str(s["over_sram"]), str(s["wins"]),
                       "-" if g is None else f"{g:.2f}", "-" if w is None else f"{w:.2f}",
                       "/".join(str(s["binds"][k]) for k in BINDS))
    console.print(stable)
    for r in failed[:10]:
        what = ", ".join(f"{k}={fmt(value(r, k))}" for k in varied) or r["key"]
        console.print(f"[red]failed[/red] {escape(r['strategy'])} ({escape(what)}): "
                      f"{escape((r['error'] or '').splitlines()[0] if r['error'] else '')}"
                      + (" [retried on the next run]" if r.get("error_kind") == "crash" else ""))
    if len(failed) > 10:
        console.print(f"... and {len(failed) - 10} more failures (--json lists them)")


def _cell(r: dict[str, Any] | None, best: bool) -> str:
    """A strategy's ratio to the best: bold for the best, † when its plan is over SRAM."""
    if r is None or r.get("ratio_to_best") is None:
        return "-"
    text = f"{r['ratio_to_best']:.2f}" + ("" if r["sram_fits"] else "†")
    return f"[bold]{text}[/bold]" if best else text
