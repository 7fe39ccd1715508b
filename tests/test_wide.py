"""Static and dynamic programs at any chiplet count: end to end at 64 and 128 chiplets (member
sets wider than a machine word travel as chiplet lists in the IR and as MASK records in the ISA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsedp_compiler.backends.emit import emit
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import load_trace, save_trace
from fsedp_compiler.ir.modules import make_context, module_from_spec
from fsedp_compiler.isa import MASK, decode_tables, tables_text
from fsedp_compiler.pipeline.compile import compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.pipeline.estimate import estimate_module
from fsedp_compiler.sim.data import DataPlane
from fsedp_compiler.sim.loader import load_outdir
from fsedp_compiler.sim.run import simulate

RING = """name = "ring-{n}"
chiplets = {n}
topology = "ring"
[chiplet]
tops = {{ int8 = 8.0, bf16 = 4.0 }}
sram_mib = 4
dram_channels = 1
dram_gbps_per_channel = 34.1
dram_latency_ns = 100
dram_pj_per_bit = 4.0
sram_pj_per_bit = 0.1
pj_per_mac = {{ int8 = 0.1, bf16 = 0.4 }}
[link]
gbps = 256
latency_ns = 8
pj_per_bit = 0.3
"""


@pytest.mark.parametrize("n", [64, 128])
def test_static_and_dynamic_programs_at_any_chiplet_count(n: int, tmp_path: Path) -> None:
    spec = ModelSpec("wide", 1, (DenseSpec(0, 64, 64),), (MoeLayerSpec(0, 8, 2 * n, 4, 2, 1, n),))
    (tmp_path / "t.toml").write_text(RING.format(n=n))
    save_trace(synth_trace(spec, n, 1, n, "zipf:0.5", 0.0, 1), str(tmp_path / "r.npz"))
    trace = load_trace(str(tmp_path / "r.npz"))
    results = {}
    for mode in ("static", "dynamic"):
        module = module_from_spec(spec)
        run_passes(make_context(), module, compile_passes(
            "fsedp", target=str(tmp_path / "t.toml"), trace=str(tmp_path / "r.npz") if mode == "static" else None,
            mode=mode, shards_per_chiplet=1))
        emit(module, str(tmp_path / mode), strategy="fsedp")
        loaded = load_outdir(str(tmp_path / mode))
        m = simulate(loaded, trace if mode == "dynamic" else None, data=DataPlane(loaded)).metrics
        assert m["functional"]["checked_layer_steps"] == 1
        assert m["makespan_ns"] == estimate_module(module, trace).makespan
        results[mode] = m
    # the shared expert needs every chiplet: its member set spans n bits
    # (in the stream tables the program stores once, streams.bin)
    tables = decode_tables((tmp_path / "static" / "streams.bin").read_bytes())
    assert (tables.instrs["opcode"] == MASK).sum() >= n // 64 - 1
    assert f"members=0x{'f' * (n // 4)}" in tables_text(tables)
    assert results["dynamic"]["dram_bytes"] == results["static"]["dram_bytes"]
