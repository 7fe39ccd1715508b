"""`fsedpc targets`: list the bundled presets (or given TOML files) and their virtual rings."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from fsedp_compiler.console import make_console
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.target_files import preset_names, resolve_target


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "targets",
        help="list chiplet-system presets and their R1 virtual rings",
        description="List the bundled target presets (or the named presets / TOML files) with their "
        "topology, DRAM, links, compute and the virtual ring (R1 Hamiltonian cycle).",
    )
    p.add_argument("targets", nargs="*", metavar="NAME|FILE.toml", help="presets or target files (default: all presets)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def target_summary(t: Target) -> dict[str, object]:
    """The facts `fsedpc targets` shows, as plain data."""
    c = t.chiplet
    return {
        "name": t.name,
        "description": t.description,
        "chiplets": t.num_chiplets,
        "topology": t.topology,
        "links": [list(e) for e in t.edges],
        "dram_at": list(t.dram_at),
        "dram_channels_total": t.dram_channels_total,
        "dram_gbps_per_channel": c.dram_gbps_per_channel,
        "dram_gbps_total": t.dram_gbps_total,
        "link_gbps": t.link.gbps,
        "link_latency_ns": t.link.latency_ns,
        "tops": dict(c.tops),
        "sram_mib": c.sram_mib,
        "ring": list(t.ring),
        "rings": [list(r) for r in t.rings],
    }


def run(args: argparse.Namespace) -> int:
    names = args.targets or preset_names()
    targets = [resolve_target(n) for n in names]
    if args.json:
        print(json.dumps({"targets": [target_summary(t) for t in targets]}, indent=2))
        return 0
    table = Table(title="chiplet systems", title_justify="left")
    for col in ("name", "chiplets", "topology", "DRAM", "D2D link", "TOPS int8/bf16", "SRAM",
                "virtual rings (R1 first)"):
        table.add_column(col, justify="right" if col in ("chiplets", "SRAM") else "left")
    for t in targets:
        c = t.chiplet
        dram_where = "all" if len(t.dram_at) == t.num_chiplets else ",".join(map(str, t.dram_at))
        table.add_row(
            t.name,
            str(t.num_chiplets),
            t.topology,
            f"{t.dram_channels_total}x{c.dram_gbps_per_channel:g} GB/s @ {dram_where}",
            f"{t.link.gbps:g} GB/s, {t.link.latency_ns:g} ns",
            f"{c.tops_at('int8'):g}/{c.tops_at('bf16'):g}",
            f"{c.sram_mib:g} MiB",
            "\n".join(" ".join(map(str, r)) for r in t.rings),
        )
    make_console().print(table)
    return 0
