"""The figures of a sweep report (matplotlib): each strategy's step time over the best, heatmaps
of the winner and of FSE-DP's margin over two swept axes, and the binding resource.

Each figure is rendered to PNG bytes in memory; `fsedpc sweep report` writes them, with an index
page `figures.md`, as one directory output.
"""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict
from typing import Any

from fsedp_compiler.bench.plots import _pyplot
from fsedp_compiler.pipeline.compare import binding, fastest
from fsedp_compiler.sweep.report import BINDS, axes, fmt, geomean, groups, numeric, sort_key, strategies, table_axes, value

#: Axes preferred for heatmaps, first the hardware ones (what an architect varies), then the load.
_PREFERRED = ("link_dram_ratio", "link.gbps", "chiplet.dram_gbps_per_channel", "chiplet.sram_mib", "chiplets",
              "tokens", "buffers", "steps", "seed")


def heatmap_axes(rows: list[dict[str, Any]], wanted: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The two axes of the heatmaps: `wanted`, else the preferred swept ones (one hardware axis first),
    else any two swept axes; None when fewer than two were swept."""
    varied = table_axes(rows)
    if wanted:
        return wanted
    ranked = [k for k in _PREFERRED if k in varied] + [k for k in varied if k not in _PREFERRED]
    # the ratio and the bandwidth it is made of tell the same story: keep one of them
    if "link_dram_ratio" in ranked and "link.gbps" in ranked:
        ranked.remove("link.gbps")
    return (ranked[0], ranked[1]) if len(ranked) >= 2 else None


def _label(ax: Any, x: float, y: float, text: str) -> None:
    """Cell text readable on any colour (a white halo)."""
    import matplotlib.patheffects as pe

    ax.text(x, y, text, ha="center", va="center", fontsize=7, path_effects=[pe.withStroke(linewidth=2.5,
                                                                                         foreground="white")])


def _png(fig: Any, plt: Any) -> bytes:
    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def _colours(plt: Any, names: list[str]) -> dict[str, Any]:
    palette = plt.get_cmap("tab20").colors
    return {s: palette[i % len(palette)] for i, s in enumerate(names)}


def _plain_log(ax: Any) -> None:
    """A log y axis labelled 1, 1.5, 2, ... rather than 10^0."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    for axis in (ax.yaxis,):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "1235" else ""))


def ratio_figure(rows: list[dict[str, Any]], x: str | None = None) -> bytes:
    """Left: each strategy's step time over its group's best, over every point (box and dots). Right:
    its geometric mean against `x` (by default the first numeric swept axis)."""
    plt = _pyplot()
    names = strategies(rows)
    ok = [r for r in rows if r["status"] == "ok" and r.get("ratio_to_best")]
    colours = _colours(plt, names)
    fig, (ax_box, ax_line) = plt.subplots(1, 2, figsize=(14, 4.8))
    data = [[r["ratio_to_best"] for r in ok if r["strategy"] == s] or [math.nan] for s in names]
    ax_box.boxplot(data, showfliers=False)
    for i, vals in enumerate(data, 1):
        ax_box.scatter([i + 0.12 * ((j % 7) - 3) / 3 for j in range(len(vals))], vals, s=8, alpha=0.5,
                       color=colours[names[i - 1]])
    ax_box.set_xticks(range(1, len(names) + 1), names, rotation=60, fontsize=8)
    _plain_log(ax_box)
    ax_box.axhline(1.0, color="k", linewidth=0.8)
    ax_box.set_ylabel("step time / fastest strategy's (log)")
    ax_box.set_title("every point: how far each strategy is from the best")
    if x is None or not numeric(rows, x):
        x = next((k for k in table_axes(rows) if numeric(rows, k)), None)
    if x is None:
        ax_line.set_axis_off()
        ax_line.text(0.5, 0.5, "no numeric swept axis", ha="center")
    else:
        xs = sorted({value(r, x) for r in ok})
        for s in names:
            ys = [geomean([r["ratio_to_best"] for r in ok if r["strategy"] == s and value(r, x) == v]) for v in xs]
            ax_line.plot(xs, [math.nan if y is None else y for y in ys], marker="o", label=s, color=colours[s],
                         linewidth=2.8 if s == "fsedp" else 1.2)
        if all(v > 0 for v in xs) and xs[-1] / max(xs[0], 1e-12) >= 8:
            ax_line.set_xscale("log", base=2)
        ax_line.set_xticks(xs, [fmt(v) for v in xs], fontsize=8)
        ax_line.minorticks_off()
        _plain_log(ax_line)
        ax_line.set_xlabel(x)
        ax_line.set_ylabel("geometric mean of step time / best")
        ax_line.set_title(f"against {x} (mean over the other axes)")
        ax_line.legend(fontsize=7, ncol=2)
    return _png(fig, plt)


def _cells(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[Any], list[Any], dict[tuple[Any, Any], list]]:
    """The x and y values and, per cell, the groups (dicts strategy → row) that fall in it."""
    varied = axes(rows)
    cells: dict[tuple[Any, Any], list[dict[str, dict[str, Any]]]] = defaultdict(list)
    for _, members in groups(rows, varied):
        r0 = next(iter(members.values()))
        cells[(value(r0, x), value(r0, y))].append(members)
    xs = sorted({k[0] for k in cells}, key=sort_key)
    ys = sorted({k[1] for k in cells}, key=sort_key)
    return xs, ys, cells


def heatmap_figure(rows: list[dict[str, Any]], x: str, y: str) -> bytes:
    """Left: the winning strategy of each (x, y) cell (the most frequent over the other axes).
    Right: FSE-DP's margin, the best other plan's step time over FSE-DP's (above 1: FSE-DP wins);
    winners and the best other plan are among the plans that fit SRAM."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap, TwoSlopeNorm

    names = strategies(rows)
    colours = _colours(plt, names)
    xs, ys, cells = _cells(rows, x, y)
    fig, (ax_w, ax_m) = plt.subplots(1, 2, figsize=(max(10, 1.1 * len(xs) * 2 + 3), max(4, 0.5 * len(ys) + 2)))
    index = {s: i for i, s in enumerate(names)}
    win = [[math.nan] * len(xs) for _ in ys]
    margin = [[math.nan] * len(xs) for _ in ys]
    labels: dict[tuple[int, int], str] = {}
    for (vx, vy), members in cells.items():
        i, j = ys.index(vy), xs.index(vx)
        best = Counter(next(iter(m.values()))["best"] for m in members).most_common(1)[0][0]
        if best is not None:
            win[i][j] = index[best]
            labels[(i, j)] = best
        margins = []
        for m in members:
            f = m.get("fsedp")
            other = fastest(r for s, r in m.items() if s != "fsedp").best  # fits SRAM, not auto
            if f and other and f["makespan_ns"]:
                margins.append(other["makespan_ns"] / f["makespan_ns"])
        g = geomean(margins)
        margin[i][j] = math.nan if g is None else g
    ax_w.imshow(win, cmap=ListedColormap([colours[s] for s in names]), vmin=-0.5, vmax=len(names) - 0.5,
                aspect="auto", origin="lower")
    for (i, j), s in labels.items():
        _label(ax_w, j, i, s)
    ax_w.set_title("fastest strategy")
    finite = [v for row in margin for v in row if not math.isnan(v)]
    if finite:
        lo, hi = min(finite + [0.99]), max(finite + [1.01])
        im = ax_m.imshow(margin, cmap="RdBu", norm=TwoSlopeNorm(1.0, lo, hi), aspect="auto", origin="lower")
        for i, row in enumerate(margin):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    _label(ax_m, j, i, f"{v:.2f}")
        fig.colorbar(im, ax=ax_m, label="best other / FSE-DP step time")
        ax_m.set_title("FSE-DP's margin (blue: FSE-DP faster)")
    else:
        ax_m.set_axis_off()
        ax_m.text(0.5, 0.5, "no fsedp rows", ha="center")
    for ax in (ax_w, ax_m):
        ax.set_xticks(range(len(xs)), [fmt(v) for v in xs], fontsize=8)
        ax.set_yticks(range(len(ys)), [fmt(v) for v in ys], fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    return _png(fig, plt)


def binding_figure(rows: list[dict[str, Any]], xy: tuple[str, str] | None) -> bytes:
    """Left: the share of each strategy's points bound by DRAM, links, compute or the tail
    (`compare.binding`). Right: FSE-DP's binding resource over the two heatmap axes."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    names = strategies(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    res_colour = {"dram": "tab:orange", "link": "tab:green", "compute": "tab:purple", "tail": "tab:gray"}
    fig, (ax_b, ax_h) = plt.subplots(1, 2, figsize=(14, 4.8))
    bottom = [0.0] * len(names)
    for kind in BINDS:
        share = []
        for s in names:
            mine = [r for r in ok if r["strategy"] == s]
            share.append(sum(binding(r["max_busy"]) == kind for r in mine) / len(mine) if mine else 0.0)
        ax_b.bar(names, share, bottom=bottom, label=kind, color=res_colour[kind])
        bottom = [b + v for b, v in zip(bottom, share)]
    ax_b.set_ylabel("share of the strategy's points")
    ax_b.set_title("binding resource (busiest engine kind, or the tail)")
    ax_b.tick_params(axis="x", rotation=60, labelsize=8)
    ax_b.legend(fontsize=8)
    if xy is None or not any(r["strategy"] == "fsedp" for r in ok):
        ax_h.set_axis_off()
        ax_h.text(0.5, 0.5, "needs two swept axes and fsedp rows", ha="center")
    else:
        x, y = xy
        xs, ys, cells = _cells(rows, x, y)
        grid = [[math.nan] * len(xs) for _ in ys]
        for (vx, vy), members in cells.items():
            kinds = Counter(binding(m["fsedp"]["max_busy"]) for m in members if "fsedp" in m)
            if kinds:
                kind = kinds.most_common(1)[0][0]
                i, j = ys.index(vy), xs.index(vx)
                grid[i][j] = BINDS.index(kind)
                _label(ax_h, j, i, kind)
        ax_h.imshow(grid, cmap=ListedColormap([res_colour[k] for k in BINDS]), vmin=-0.5, vmax=len(BINDS) - 0.5,
                    aspect="auto", origin="lower")
        ax_h.set_xticks(range(len(xs)), [fmt(v) for v in xs], fontsize=8)
        ax_h.set_yticks(range(len(ys)), [fmt(v) for v in ys], fontsize=8)
        ax_h.set_xlabel(x)
        ax_h.set_ylabel(y)
        ax_h.set_title("FSE-DP's binding resource")
    return _png(fig, plt)


def render_figures(rows: list[dict[str, Any]], wanted: tuple[str, str] | None = None) -> dict[str, bytes | str]:
    """{file name: contents} of every figure and the `figures.md` page that shows them."""
    plt = _pyplot()
    plt.rcParams["svg.hashsalt"] = "fsedpc"
    xy = heatmap_axes(rows, wanted)
    files: dict[str, bytes | str] = {"ratio-to-best.png": ratio_figure(rows, xy[0] if xy else None)}
    page = ["# Sweep figures", "", "Step time of each strategy over the fastest of the same point:", "",
            "![ratio to best](ratio-to-best.png)", ""]
    if xy is not None:
        name = f"heatmap-{xy[0]}-{xy[1]}.png".replace("/", "_")
        files[name] = heatmap_figure(rows, *xy)
        page += [f"The fastest strategy and FSE-DP's margin over {xy[0]} × {xy[1]} (other axes: the most "
                 "frequent winner, the geometric-mean margin):", "", f"![heatmap]({name})", ""]
    else:
        page += ["(No heatmap: the sweep varies fewer than two axes besides the strategy.)", ""]
    files["binding.png"] = binding_figure(rows, xy)
    page += ["The binding resource:", "", "![binding resource](binding.png)", ""]
    files["figures.md"] = "\n".join(page)
    return files
