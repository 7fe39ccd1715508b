"""Targets: presets, topologies, the R1 virtual ring, TOML validation errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.target_files import load_preset, parse_target_toml, preset_names
from fsedp_compiler.inputs.topology import boustrophedon_cycle, ring_problem, search_hamiltonian_cycle, topology_edges

EXAMPLES_TINY = Path(__file__).resolve().parent.parent / "examples" / "models" / "tiny-moe.mlir"

BASE = """
name = "t"
chiplets = 4
topology = "mesh:2x2"
[chiplet]
tops = { int8 = 8.0, bf16 = 4.0 }
sram_mib = 8
dram_gbps_per_channel = 25.6
dram_latency_ns = 100
dram_pj_per_bit = 4.0
sram_pj_per_bit = 0.1
pj_per_mac = { int8 = 0.1, bf16 = 0.4 }
[link]
gbps = 288
latency_ns = 10
pj_per_bit = 0.3
"""


def test_presets_named_in_the_issue_exist() -> None:
    assert set(preset_names()) >= {"paper-2x2", "paper-4x4", "ring-8", "mesh-4x4", "torus-4x4", "hbm-8"}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_has_a_valid_ring_and_round_trips_through_the_attribute(name: str) -> None:
    t = load_preset(name)
    assert ring_problem(t.num_chiplets, t.edges, t.ring) is None
    from fsedp_compiler.dialects.chiplet import SystemAttr

    assert SystemAttr.from_target(t).target() == t


def test_paper_preset_matches_the_authors_setting() -> None:
    t = load_preset("paper-4x4")
    assert t.num_chiplets == 16 and t.topology == "mesh:4x4"
    assert t.dram_at == (0, 3, 12, 15)  # DDR on the corner chiplets only
    assert t.chiplet.dram_gbps_per_channel == 25.6 and t.link.gbps == 288
    assert t.chiplet.tops_at("int8") == pytest.approx(2 * 2048 * 0.8 / 1000)


def test_mesh_2x2_ring() -> None:
    assert load_preset("paper-2x2").ring == (0, 1, 3, 2)


@pytest.mark.parametrize("rows,cols", [(r, c) for r, c in itertools.product(range(1, 7), repeat=2)])
def test_boustrophedon_is_a_hamiltonian_cycle_when_one_exists(rows: int, cols: int) -> None:
    cycle = boustrophedon_cycle(rows, cols)
    n = rows * cols
    exists = n <= 2 or (rows > 1 and cols > 1 and (rows * cols) % 2 == 0)
    assert (cycle is not None) == exists
    if cycle is not None:
        assert ring_problem(n, topology_edges(f"mesh:{rows}x{cols}", n), cycle) is None


@given(st.integers(3, 9), st.integers(0, 2**16))
def test_search_finds_ring_of_a_shuffled_cycle_with_chords(n: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    edges = {tuple(sorted((order[i], order[(i + 1) % n]))) for i in range(n)}
    edges |= {tuple(sorted(rng.sample(range(n), 2))) for _ in range(rng.randint(0, n))}
    ring = search_hamiltonian_cycle(n, sorted(edges))
    assert ring is not None and ring_problem(n, edges, ring) is None


def _err(text: str) -> FsedpError:
    with pytest.raises(FsedpError) as info:
        parse_target_toml(text, "bad.toml")
    return info.value


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("sram_mib = 8", "sram_mib = -1", "bad.toml: error: chiplet.sram_mib: must be > 0, got -1"),
        ("gbps = 288", "gbps = 0", "bad.toml: error: link.gbps: must be > 0, got 0"),
        ("gbps = 288", 'gbps = "fast"', "bad.toml: error: link.gbps: must be a number, got 'fast'"),
        ("chiplets = 4", "chiplets = 5", "bad.toml: error: topology: mesh:2x2 has 4 chiplets but chiplets = 5"),
        ('topology = "mesh:2x2"', 'topology = "hypercube"', "topology: unknown topology 'hypercube'"),
        ('topology = "mesh:2x2"', 'topology = "mesh:2x2"\ndram_at = [0, 9]', "dram_at: chiplet 9 is outside 0..3"),
        ('topology = "mesh:2x2"', 'topology = "ring"\ndram_at = "corners"', 'dram_at: "corners" needs a mesh or torus'),
        ('topology = "mesh:2x2"', 'topology = "mesh:2x2"\nring = [0, 1, 2, 3]', "ring: ring step 1 -> 2 is not a link"),
        ("dram_latency_ns = 100", "dram_latency_ns = 100\nsram_gb = 1", "chiplet.sram_gb: unknown field"),
        ("tops = { int8 = 8.0, bf16 = 4.0 }", "tops = { int8 = 8.0 }", "chiplet.tops.bf16: missing required field"),
        ("[link]", "[lnk]", "lnk: unknown field"),
        ('topology = "mesh:2x2"', 'topology = "links"\nlinks = [[0, 1], [2, 3]]', "links: topology is not connected"),
        ("pj_per_bit = 0.3", "pj_per_bit = 0.3\n[cost]\nmin_tokens = 0", "cost.min_tokens: must be >= 1, got 0"),
        ("pj_per_bit = 0.3", "pj_per_bit = 0.3\n[cost]\nop_overhead_ns = 1.5", "cost.op_overhead_ns: must be an integer"),
        ("pj_per_bit = 0.3", "pj_per_bit = 0.3\n[cost]\nwarmup = 3", "cost.warmup: unknown field"),
        ('name = "t"\n', 'name = "t"\ncost = 3\n', "cost: must be a table"),
    ],
)
def test_toml_errors_name_the_field(old: str, new: str, expected: str) -> None:
    assert old in BASE
    assert expected in str(_err(BASE.replace(old, new, 1)))


def test_the_cost_table_reaches_the_module_and_round_trips_through_mlir_text() -> None:
    """[cost] sets the cost model's knobs; the module attribute prints them only when set, so a
    target without [cost] keeps its text."""
    from fsedp_compiler.costmodel import CostModel
    from fsedp_compiler.dialects.chiplet import SystemAttr
    from fsedp_compiler.ir.modules import make_context
    from xdsl.parser import Parser
    from xdsl.printer import Printer
    import io

    plain = parse_target_toml(BASE, "t.toml")
    tuned = parse_target_toml(BASE + "[cost]\nmin_tokens = 16\nop_overhead_ns = 40\n", "t.toml")
    assert CostModel(plain).ffn_ns(1000, 1) < CostModel(tuned).ffn_ns(1000, 1)
    assert (CostModel(tuned).min_tokens, CostModel(tuned).op_overhead_ns) == (16, 40)
    texts = {}
    for name, target in (("plain", plain), ("tuned", tuned)):
        out = io.StringIO()
        Printer(stream=out).print_attribute(SystemAttr.from_target(target))
        texts[name] = out.getvalue()
        parsed = Parser(make_context(), texts[name]).parse_attribute()
        assert isinstance(parsed, SystemAttr) and parsed.target() == target
    assert "cost" not in texts["plain"]
    assert texts["tuned"].endswith(
        "cost = #chiplet.cost<min_tokens = 16, op_overhead_ns = 40, scheduler_ns_per_expert = 2>>")


@pytest.mark.parametrize("old,new,expected", [
    ('name = "t"\n', "", "bad.toml: error: name: missing required field"),
    ('name = "t"', 'name = ""', "bad.toml: error: name: must be a non-empty string"),
    ('name = "t"', "name = 7", "bad.toml: error: name: must be a non-empty string"),
    ('name = "t"', 'name = "' + "x" * 201 + '"', "at most 200 characters"),
])
def test_a_target_needs_a_name(old: str, new: str, expected: str) -> None:
    """Issue 14: a target without a name was given its file's stem; now the name is required."""
    assert old in BASE
    assert expected in str(_err(BASE.replace(old, new, 1)))


def test_a_target_file_without_a_name_is_exit_2(fsedpc, tmp_path) -> None:
    path = tmp_path / "noname.toml"
    path.write_text(BASE.replace('name = "t"\n', ""))
    for args in (("targets", str(path)), ("compile", str(EXAMPLES_TINY), "--target", str(path),
                                           "-o", str(tmp_path / "o"))):
        r = fsedpc(*args)
        assert r.code == 2 and "noname.toml: error: name: " in r.err and "missing required field" in r.err, r.err
        assert "Traceback" not in r.err
    assert not (tmp_path / "o").exists()


def test_toml_syntax_error_has_line_and_column() -> None:
    err = _err(BASE.replace("sram_mib = 8", "sram_mib == 8"))
    assert (err.path, err.line) == ("bad.toml", 7)
    assert str(err).startswith("bad.toml:7:")


def test_odd_mesh_without_ring_is_rejected_but_a_torus_works() -> None:
    text = BASE.replace("chiplets = 4", "chiplets = 9")
    assert "no Hamiltonian cycle" in str(_err(text.replace("mesh:2x2", "mesh:3x3")))
    t = parse_target_toml(text.replace("mesh:2x2", "torus:3x3"), "ok.toml")
    assert ring_problem(9, t.edges, t.ring) is None


def test_macs_per_cycle_gives_tops() -> None:
    text = BASE.replace("tops = { int8 = 8.0, bf16 = 4.0 }", "clock_ghz = 1.0\nmacs_per_cycle = { int8 = 1000, bf16 = 500 }")
    t = parse_target_toml(text, "ok.toml")
    assert t.chiplet.tops_at("int8") == 2.0 and t.chiplet.tops_at("fp16") == 1.0


def test_target_cli_lists_presets_and_rings(fsedpc) -> None:
    r = fsedpc("targets")
    assert r.code == 0
    assert "paper-4x4" in r.out and "0 1 2 3 7 6 5 9 10 11 15 14 13 12 8 4" in r.out


def test_target_cli_unknown_preset(fsedpc) -> None:
    r = fsedpc("targets", "nope")
    assert r.code == 2
    assert "unknown target preset 'nope'; known presets: hbm-8" in r.err
    assert "Traceback" not in r.err
