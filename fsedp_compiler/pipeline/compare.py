"""Fair comparisons between strategy rows: what binds each plan, and the best plan that fits.

A row is one strategy run on one routing, as `fsedpc bench --json` writes it (or a sweep row):
`strategy`, `makespan_ns`, `sram_peak_bytes`, `sram_fits`, `max_busy` and, optionally, `exact`.
`bench`, `fsedpc sweep report` and `benchmarks/results.py` all compare through here, so the rule
is the same everywhere: a plan whose peak SRAM exceeds the chiplet's capacity (or that skips work,
`exact` false) is still shown, marked, but never counted as the best (a chiplet could not run it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fsedp_compiler.strategies import AUTO, STRONG

#: Resource kinds of `max_busy`, in the order ties are broken.
KINDS = ("dram", "link", "compute")

BINDS_AT = 0.8
"""A resource binds a step when its busiest unit is busy at least this share of the time;
below it no resource is saturated and the step waits on its tail: dependencies, buffers (R4,
tile buffers) or latency (pipeline fill and drain)."""

TAIL = "tail"


def binding(max_busy: dict[str, float]) -> str:
    """`dram`, `link` or `compute` (the busiest unit's kind when it is busy >= BINDS_AT), else `tail`."""
    kind = max(KINDS, key=lambda k: max_busy.get(k, 0.0))
    return kind if max_busy.get(kind, 0.0) >= BINDS_AT else TAIL


def binding_text(max_busy: dict[str, float]) -> str:
    """`dram 99%`, or `tail (dram 68%)` when no resource is saturated: the busiest kind in brackets."""
    kind = max(KINDS, key=lambda k: max_busy.get(k, 0.0))
    busy = f"{kind} {max_busy.get(kind, 0.0):.0%}"
    return busy if binding(max_busy) != TAIL else f"{TAIL} ({busy})"


def excluded_reason(row: dict[str, Any], capacity: int | None = None) -> str | None:
    """Why `row` cannot be the best plan: over SRAM (its peak and the capacity) or inexact; None if it can."""
    if not row.get("sram_fits", True):
        peak = max(row["sram_peak_bytes"], default=0)
        return "over SRAM" if capacity is None else f"over SRAM: peak {_size(peak)} > {_size(capacity)}"
    if row.get("exact") is False:
        return "inexact (skips work)"
    return None


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


@dataclass(frozen=True)
class Pick:
    """The fastest eligible row of a group (None when none is), and each ineligible one's reason."""

    best: dict[str, Any] | None
    excluded: dict[str, str] = field(default_factory=dict)


def fastest(rows: Iterable[dict[str, Any]], capacity: int | None = None) -> Pick:
    """The fastest row that fits SRAM and is exact (ties: the earlier row), among plans (`auto`,
    a choice among them, is left out)."""
    best: dict[str, Any] | None = None
    excluded: dict[str, str] = {}
    for r in rows:
        if r["strategy"] == AUTO:
            continue
        reason = excluded_reason(r, capacity)
        if reason is not None:
            excluded[r["strategy"]] = reason
        elif best is None or r["makespan_ns"] < best["makespan_ns"]:
            best = r
    return Pick(best, excluded)


def best_strong(rows: Iterable[dict[str, Any]], capacity: int | None = None) -> Pick:
    """The fastest strong baseline (`strategies.STRONG`) that fits SRAM, among `rows` (one routing)."""
    return fastest((r for r in rows if r["strategy"] in STRONG), capacity)


def strong_summary(rows: list[dict[str, Any]], capacity: int | None = None) -> list[dict[str, Any]]:
    """Per token count: FSE-DP against the best strong baseline that fits SRAM, what binds each,
    and the strong baselines left out and why (the `best_strong` list of a bench report)."""
    out = []
    for tokens in sorted({r["tokens"] for r in rows}):
        group = [r for r in rows if r["tokens"] == tokens]
        pick = best_strong(group, capacity)
        f = next((r for r in group if r["strategy"] == "fsedp"), None)
        b = pick.best
        out.append({
            "tokens": tokens,
            "strategy": None if b is None else b["strategy"],
            "step_ns": None if b is None else b["step_ns"],
            "binds": None if b is None else binding(b["max_busy"]),
            "speedup_of_fsedp": (round(b["makespan_ns"] / f["makespan_ns"], 6)
                                 if b is not None and f is not None and f["makespan_ns"] else None),
            "fsedp_binds": None if f is None else binding(f["max_busy"]),
            "excluded": dict(sorted(pick.excluded.items())),
        })
    return out
