"""Figures of a bench report (matplotlib, an optional dependency: `pip install fsedp-compiler[plot]`).

One PNG with three panels: step time vs tokens per strategy; peak SRAM per chiplet per strategy;
mean engine busy fraction (DRAM, links, compute) per strategy, stacked, at the largest token count.
"""

from __future__ import annotations

import io
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import write_output


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FsedpError("plotting needs matplotlib: pip install 'fsedp-compiler[plot]'", field="--plot") from None
    return plt


def plot_report(report: dict[str, Any], path: str) -> None:
    """Write the three-panel figure of `report` (as `run_bench` returns it) to `path` (`-`: stdout)."""
    write_output(path, render_report(report))


def render_report(report: dict[str, Any]) -> bytes:
    """The three-panel figure of `report` as PNG bytes (rendered in memory: nothing is written)."""
    plt = _pyplot()
    plt.rcParams["svg.hashsalt"] = "fsedpc"
    rows = report["rows"]
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    tokens = sorted({r["tokens"] for r in rows})
    fig, (ax_t, ax_m, ax_b) = plt.subplots(1, 3, figsize=(16, 4.8))
    colours = plt.get_cmap("tab20").colors
    for i, s in enumerate(strategies):
        pts = sorted((r["tokens"], r["step_ns"] / 1e3) for r in rows if r["strategy"] == s)
        ax_t.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s, color=colours[i % len(colours)],
                  linewidth=2.8 if s == "fsedp" else 1.2)
    ax_t.set_xscale("log", base=2)
    ax_t.set_xticks(tokens, [str(t) for t in tokens])
    ax_t.set_xlabel("tokens per step")
    ax_t.set_ylabel("step time (us)")
    ax_t.set_title("step time")
    ax_t.legend(fontsize=7, ncol=2)
    last = tokens[-1]
    at = {r["strategy"]: r for r in rows if r["tokens"] == last}
    names = [s for s in strategies if s in at]
    ax_m.bar(names, [max(at[s]["sram_peak_bytes"]) / 2**20 for s in names],
             color=["tab:red" if not at[s]["sram_fits"] else "tab:blue" for s in names])
    ax_m.axhline(report.get("sram_capacity_bytes", 0) / 2**20 or float("nan"), color="k", linestyle="--",
                 linewidth=1)
    ax_m.set_ylabel("peak SRAM per chiplet (MiB)")
    ax_m.set_title(f"peak SRAM at {last} tokens (red: over capacity)")
    bottom = [0.0] * len(names)
    for kind, colour in (("dram", "tab:orange"), ("link", "tab:green"), ("compute", "tab:purple")):
        vals = [at[s]["engine_busy"][kind] for s in names]
        ax_b.bar(names, vals, bottom=bottom, label=kind, color=colour)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax_b.set_ylabel("busy fraction per chiplet (mean; sum over its engines)")
    ax_b.set_title(f"engine busy at {last} tokens")
    ax_b.legend(fontsize=8)
    for ax in (ax_m, ax_b):
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.suptitle(f"{report['model']} on {report['target']}")
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()
