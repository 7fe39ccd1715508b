"""The simulator: hand-computed timings to the ns, functional equality, deadlock and fault reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import CCW, CW, Ring
from fsedp_compiler.fsedp.scheduler import StepSchedule, Stream
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import execute, trajectories
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target_files import parse_target_toml

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
GOLDEN = REPO / "tests" / "golden" / "metrics-tiny-moe.json"

# DRAM 10 GB/s + 100 ns; links 100 GB/s + 5 ns; 1.5 TOPS at bf16 (1500 ops/ns).
TOML = """
name = "hand"
chiplets = {n}
topology = "ring"
dram_at = [0]
[chiplet]
tops = {{ int8 = 3.0, bf16 = 1.5 }}
sram_mib = 1
dram_gbps_per_channel = 10
dram_latency_ns = 100
dram_pj_per_bit = 1
sram_pj_per_bit = 0
pj_per_mac = {{ int8 = 0, bf16 = 0 }}
[link]
gbps = 100
latency_ns = 5
pj_per_bit = 0
"""
# one SwiGLU shard of 3 x 10 x 50 weights = 1500 params = 3000 bytes at bf16:
# DRAM 300 ns busy + 100 latency, a hop 30 + 5, an FFN on one token 2 x 1500 / 1500 = 2 ns.
LAYER = MoeLayerSpec(0, d_model=10, d_ffn=50, num_experts=1, top_k=1)


def run_step(n: int, shards: int, buffers: int, members: int, direction: int) -> int:
    target = parse_target_toml(TOML.format(n=n), "hand.toml")
    layer = MoeLayerSpec(0, d_model=10, d_ffn=50 * shards, num_experts=1, top_k=1)
    plan = ShardPlan(layer, shards, buffers, ((0, 0),))
    ring, cost = Ring(target.ring), CostModel(target)
    tokens = tuple(1 if members >> c & 1 else 0 for c in range(n))
    sched = StepSchedule(0, 0, (Stream(0, members, direction, tokens),), 0)
    return execute(trajectories(sched, plan, ring), plan, ring, cost, {0: tokens}).makespan


def test_one_shard_over_one_link() -> None:
    assert run_step(n=2, shards=1, buffers=2, members=0b10, direction=CW) == 300 + 100 + 30 + 5 + 2


def test_ring_of_three_with_pass_through() -> None:
    # clockwise 0 -> 1 -> 2: chiplet 1 only forwards (R3); counter-clockwise 0 -> 2 is one hop
    assert run_step(n=3, shards=1, buffers=2, members=0b100, direction=CW) == 300 + 100 + 2 * (30 + 5) + 2
    assert run_step(n=3, shards=1, buffers=2, members=0b100, direction=CCW) == 300 + 100 + 30 + 5 + 2


def test_two_buffer_pipeline() -> None:
    # shard 0: load 0-300, usable 400, sent 400-430, FFN at chiplet 1 435-437. The critical bubble
    # (R4) sits on chiplet 1, which has no DRAM, and a pool of two needs one slot to load, so
    # shard 1 loads 300-600, usable 700, sent 700-730, FFN 735-737.
    assert run_step(n=2, shards=2, buffers=2, members=0b10, direction=CW) == 737
    # three buffers: a load leaves a slot for transit (two free), still back to back here
    assert run_step(n=2, shards=2, buffers=3, members=0b10, direction=CW) == 737


def compile_sim(fsedpc, tmp: Path, model: Path, trace: Path, target: str = "paper-2x2", *extra: str) -> dict:
    out = tmp / "out"
    if out.exists():
        shutil.rmtree(out)
    r = fsedpc("compile", str(model), "--target", target, "--trace", str(trace), "-o", str(out), *extra)
    assert r.code == 0, r.err
    r = fsedpc("simulate", str(out), "--functional", "--metrics", str(tmp / "m.json"))
    assert r.code == 0, r.err
    return json.loads((tmp / "m.json").read_text())


def test_golden_metrics(fsedpc, tmp_path: Path) -> None:
    metrics = compile_sim(fsedpc, tmp_path, MODEL, TRACE)
    assert metrics == json.loads(GOLDEN.read_text())


def test_static_and_dynamic_runs_do_the_same_work(fsedpc, tmp_path: Path) -> None:
    # one shard plan for both (without a trace the automatic one is never cut for the tail)
    static = compile_sim(fsedpc, tmp_path, MODEL, TRACE, "paper-2x2", "--shards-per-chiplet", "2")
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--shards-per-chiplet", "2", "-o", str(tmp_path / "dyn"))
    assert r.code == 0
    r = fsedpc("simulate", str(tmp_path / "dyn"), "--trace", str(TRACE), "--functional",
               "--metrics", str(tmp_path / "d.json"))
    assert r.code == 0, r.err
    dynamic = json.loads((tmp_path / "d.json").read_text())
    for key in ("dram_bytes", "d2d_bytes", "d2d_link_bytes", "sram_peak_bytes", "sim_events", "lower_bound_ns"):
        assert static[key] == dynamic[key], key
    # the controller's scheduler latency is the only difference in time
    assert dynamic["makespan_ns"] > static["makespan_ns"]
    assert dynamic["makespan_ns"] - static["makespan_ns"] < 0.01 * static["makespan_ns"]


@st.composite
def small_models(draw):
    experts = draw(st.integers(2, 6))
    top_k = draw(st.integers(1, min(2, experts)))
    shared = draw(st.integers(0, 1))
    act = draw(st.sampled_from(["swiglu", "gelu"]))
    return (experts, top_k, shared, act, draw(st.integers(1, 12)), draw(st.integers(1, 3)), draw(st.integers(0, 99)),
            draw(st.sampled_from(["paper-2x2", "ring-8"])), draw(st.sampled_from(["static", "dynamic"])))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(small_models())
def test_functional_equality_on_random_small_models(fsedpc, tmp_path_factory, case) -> None:
    from fsedp_compiler.inputs.model import DenseSpec, ModelSpec
    from fsedp_compiler.inputs.trace_synth import synth_trace
    from fsedp_compiler.inputs.traces import save_trace
    from fsedp_compiler.ir.modules import module_text_from_spec

    experts, top_k, shared, act, tokens, steps, seed, target, mode = case
    tmp = tmp_path_factory.mktemp("func")
    layers = tuple(MoeLayerSpec(i, 16, 64, experts, top_k, shared, 32 if shared else 0, act) for i in range(2))
    spec = ModelSpec("rand", 2, tuple(DenseSpec(i, 64, 64) for i in range(2)), layers)
    (tmp / "m.mlir").write_text(module_text_from_spec(spec))
    n = 4 if target == "paper-2x2" else 8
    save_trace(synth_trace(spec, tokens, steps, n, "zipf:0.7", 0.3, seed), str(tmp / "t.npz"))
    args = ["compile", str(tmp / "m.mlir"), "--target", target, "-o", str(tmp / "o"), "--shards-per-chiplet", "2",
            "--buffers", str(4 + seed % 3)]
    if mode == "static":
        args += ["--trace", str(tmp / "t.npz")]
    r = fsedpc(*args)
    assert r.code == 0, r.err
    r = fsedpc("simulate", str(tmp / "o"), "--trace", str(tmp / "t.npz"), "--functional", "--seed", str(seed),
               "--metrics", str(tmp / "m.json"))
    assert r.code == 0, r.err
    metrics = json.loads((tmp / "m.json").read_text())
    assert metrics["functional"]["checked_layer_steps"] == 2 * steps
    assert metrics["makespan_ns"] >= metrics["lower_bound_ns"]


def test_functional_mismatch_names_token_layer_and_expert(tmp_path: Path, monkeypatch) -> None:
    """A tile with the wrong numbers in it (as if DRAM held another slice) is caught at the end
    of its step, naming the token, layer, step and expert."""
    from fsedp_compiler.cli import main
    from fsedp_compiler.sim.data import DataPlane, FunctionalMismatch
    from fsedp_compiler.sim.loader import load_outdir
    from fsedp_compiler.sim.run import simulate

    assert main(["compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(tmp_path)]) == 0
    loaded = load_outdir(str(tmp_path))
    real = DataPlane._tile

    def corrupt(self, e: int, j: int):  # shard 0 of every layer-1 expert holds shard 1's numbers
        return real(self, e, 1) if (self.layer.spec.index, j) == (1, 0) else real(self, e, j)

    monkeypatch.setattr(DataPlane, "_tile", corrupt)
    with pytest.raises(FunctionalMismatch, match=r"token \d+ \(chiplet \d\), layer 1, step 0, expert \d+: wrong contribution"):
        simulate(loaded, data=DataPlane(loaded))


def test_deadlock_is_reported_not_hung(fsedpc, tmp_path: Path) -> None:
    """Two buffers shared by streams in both directions, each holding an escape slot (R4 needs
    three): no DRAM load can ever start.
    (Slow links, so that the scheduler streams both ways.)"""
    toml = (REPO / "examples" / "targets" / "paper-2x2.toml").read_text().replace("gbps = 288", "gbps = 1")
    (tmp_path / "slow.toml").write_text(toml)
    out = tmp_path / "out"
    r = fsedpc("compile", str(MODEL), "--target", str(tmp_path / "slow.toml"), "--trace", str(TRACE), "-o", str(out))
    assert r.code == 0
    manifest = json.loads((out / "program.json").read_text())
    for layer in manifest["layers"]:
        layer["buffers"] = 2
    from fsedp_compiler.files.digest import with_digest

    (out / "program.json").write_text(json.dumps(with_digest(manifest)))  # re-digested: past the integrity check
    r = fsedpc("simulate", str(out))
    assert r.code == 3
    assert "no engine can start while work remains" in r.err
    assert "dma0: load e" in r.err and "waits for a free buffer (has 2, 2 held for forwards)" in r.err
    assert "Traceback" not in r.err


def test_faults_are_clear_errors(fsedpc, tmp_path: Path) -> None:
    from fsedp_compiler.isa import decode, header_size

    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(tmp_path))
    assert r.code == 0
    binary = tmp_path / "chiplet_1.bin"
    good = binary.read_bytes()
    binary.write_bytes(good[:-7])
    r = fsedpc("simulate", str(tmp_path))
    assert r.code == 2 and "chiplet_1.bin: error: SHA-256 does not match program.json" in r.err
    # a well-formed program whose SEND names a port chiplet 1 does not have
    program = decode(good)
    sends = np.flatnonzero(program.instrs["opcode"] == 0x22)
    raw = bytearray(good)
    raw[header_size(len(program.ports)) + 32 * int(sends[0]) + 1] = 5
    binary.write_bytes(bytes(raw))
    manifest = json.loads((tmp_path / "program.json").read_text())
    import hashlib

    manifest["programs"][1]["bin_sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    from fsedp_compiler.files.digest import with_digest

    (tmp_path / "program.json").write_text(json.dumps(with_digest(manifest)))  # past the digest check
    r = fsedpc("simulate", str(tmp_path))
    assert r.code == 2 and "references missing port 5" in r.err, r.err
    r = fsedpc("simulate", str(tmp_path / "nowhere"))
    assert r.code == 2 and "nowhere: error: not a directory" in r.err


@pytest.mark.parametrize("strategy", ["fsedp", "fsedp-fullring", "fsedp-nocomp", "fsedp-fixeddir", "fsedp-unpaired"])
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_fsedp_ablations_are_exact_and_move_what_they_should(fsedpc, tmp_path: Path, strategy: str, mode: str) -> None:
    from fsedp_compiler.fsedp.scheduler import StepRouting, local_tokens
    from fsedp_compiler.fsedp.shardplan import ShardPlan
    from fsedp_compiler.inputs.trace_synth import synth_trace
    from fsedp_compiler.inputs.traces import load_trace, save_trace
    from fsedp_compiler.ir.modules import load_model_spec

    spec = load_model_spec(str(MODEL))
    save_trace(synth_trace(spec, 16, 2, 8, "zipf:0.6", 0.2, 3), str(tmp_path / "t.npz"))
    args = ["compile", str(MODEL), "--target", "ring-8", "--strategy", strategy, "-o", str(tmp_path / "o")]
    if mode == "static":
        args += ["--trace", str(tmp_path / "t.npz")]
    assert fsedpc(*args).code == 0
    r = fsedpc("simulate", str(tmp_path / "o"), "--trace", str(tmp_path / "t.npz"), "--functional",
               "--metrics", str(tmp_path / "m.json"))
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["strategy"] == strategy and m["functional"]["checked_layer_steps"] == 8
    manifest = json.loads((tmp_path / "o" / "program.json").read_text())
    shard_bytes, shards = manifest["layers"][0]["shard_bytes"], manifest["layers"][0]["shards"]
    trace = load_trace(str(tmp_path / "t.npz"))
    plan = ShardPlan(spec.moe[0], shards, 6, tuple((c, 0) for c in range(8)))
    active = sum(int((local_tokens(StepRouting(*trace.step(layer, step), trace.token_chiplet), plan, 8).sum(1) > 0).sum())
                 for layer in range(4) for step in range(2))
    assert m["dram_bytes"] == active * shards * shard_bytes  # every active shard read from DRAM once
    if strategy == "fsedp-fullring":  # every shard passes every chiplet: 7 hops on ring-8
        assert m["d2d_bytes"] == 7 * m["dram_bytes"]
    elif strategy != "fsedp-nocomp":  # R1-R3: a shard stops at its last member, short of a full lap
        assert m["d2d_bytes"] < 7 * m["dram_bytes"]
