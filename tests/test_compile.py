"""`fsedpc compile`: golden instruction streams, determinism, static/dynamic agreement, errors."""

from __future__ import annotations

import filecmp
import json
import os
from collections import Counter
from pathlib import Path


from fsedp_compiler.backends.fsa import parse_text
from fsedp_compiler.backends.isa import OPCODE, decode
from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.layers import cached_trace, layer_contexts, module_model
from fsedp_compiler.passes.expand_dataflow import port_map, static_steps
from fsedp_compiler.passes.schedule_streams import step_routing
from fsedp_compiler.pipeline import run_passes
from fsedp_compiler.scheduler import schedule
from fsedp_compiler.streaming import trajectories
from fsedp_compiler.template import run_layer_template

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
GOLDEN = REPO / "tests" / "golden" / "compile-tiny-moe"


def compile_to(fsedpc, outdir: Path, *extra: str) -> None:
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(outdir), *extra)
    assert r.code == 0, r.err


def test_golden_fsa(fsedpc, tmp_path: Path) -> None:
    compile_to(fsedpc, tmp_path)
    for i in range(4):
        assert (tmp_path / f"chiplet_{i}.fsa").read_text() == (GOLDEN / f"chiplet_{i}.fsa").read_text(), i


def test_compiling_twice_gives_identical_bytes(fsedpc, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    compile_to(fsedpc, a)
    compile_to(fsedpc, b)
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert {"program.json", "final.mlir", "chiplet_0.fsa", "chiplet_0.bin"} <= set(names)
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors


def test_manifest_hashes_and_binary_match_text(fsedpc, tmp_path: Path) -> None:
    import hashlib

    compile_to(fsedpc, tmp_path)
    manifest = json.loads((tmp_path / "program.json").read_text())
    assert manifest["mode"] == "static" and manifest["model"] == "tiny-moe" and manifest["target"]["name"] == "paper-2x2"
    for entry in manifest["programs"]:
        data = (tmp_path / entry["bin"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["bin_sha256"]
        text = (tmp_path / entry["fsa"]).read_text()
        assert decode(data) == parse_text(text)


def _static_module(tmp_path: Path):
    from fsedp_compiler.ir import make_context, parse_module
    from fsedp_compiler.passes.attach_target import AttachTargetPass
    from fsedp_compiler.passes.expand_dataflow import ExpandDataflowPass
    from fsedp_compiler.passes.lower_to_dataflow import LowerToDataflowPass
    from fsedp_compiler.passes.schedule_streams import ScheduleStreamsPass
    from fsedp_compiler.passes.shard_experts import ShardExpertsPass
    from fsedp_compiler.passes.virtualize_streams import VirtualizeStreamsPass

    def build(mode: str):
        ctx = make_context()
        module = parse_module(MODEL.read_text(), str(MODEL), ctx)
        passes = [AttachTargetPass(target="paper-2x2"), ShardExpertsPass(), VirtualizeStreamsPass(),
                  ScheduleStreamsPass(mode=mode, trace=str(TRACE) if mode == "static" else ""),
                  LowerToDataflowPass(), ExpandDataflowPass()]
        run_passes(ctx, module, passes)
        return module

    return build("static"), build("dynamic")


def test_static_and_dynamic_do_the_same_work() -> None:
    """The dynamic template, run against the runtime scheduler's table for each routed step,
    does exactly the work of the static program's range instructions on every chiplet."""
    static, dynamic = _static_module(None)
    model = module_model(static)
    trace = cached_trace(str(TRACE), model)
    target = load_module_target(static)
    neighbour = [{p: nb for nb, p in m.items()} for m in port_map(target)]
    names = {v: k for k, v in OPCODE.items()}
    dyn_layers = {c.spec.index: c for c in layer_contexts(dynamic)}
    checked = 0
    for lctx in layer_contexts(static):
        templates = {p.prop_int("chiplet"): next(o for o in p.body.block.ops
                                                 if isinstance(o, df.LayerOp) and o.prop_int("layer") == lctx.spec.index)
                     for p in dynamic.ops if isinstance(p, df.ProgramOp)}
        instr_ops = {p.prop_int("chiplet"): next(o for o in p.body.block.ops
                                                 if isinstance(o, df.InstructionsOp) and o.prop_int("layer") == lctx.spec.index)
                     for p in static.ops if isinstance(p, df.ProgramOp)}
        dctx = dyn_layers[lctx.spec.index]
        pos = trace.layer_indices.index(lctx.spec.index)
        for step, sched in enumerate(static_steps(lctx, target, model)):
            # the runtime scheduler, run on the trace's routing, decides exactly what static mode recorded
            runtime = schedule(step_routing(trace, pos, lctx.spec.index, step), dctx.plan, dctx.ring,
                               CostModel(target, lctx.spec.dtype), dctx.policy)
            assert runtime.digest() == sched.digest() and runtime == sched
            trips = trajectories(runtime, dctx.plan, dctx.ring)
            tokens = {s.expert: s.tokens for s in runtime.streams}
            for c in range(target.num_chiplets):
                dyn = Counter(run_layer_template(templates[c], c, trips, tokens))
                cols = instr_ops[c].columns()
                lo, hi = instr_ops[c].prop_array("offsets")[step:step + 2]
                stat: Counter = Counter()
                for i in range(int(lo), int(hi)):
                    op = names[int(cols["opcode"][i])]
                    e, n, unit, arg = (int(cols[f][i]) for f in ("expert", "shard", "unit", "arg"))
                    key = {"loads": ("load", unit), "recvs": ("recv", neighbour[c].get(unit)),
                           "sends": ("send", neighbour[c].get(unit)), "ffns": ("ffn", arg), "frees": ("free", 0)}.get(op)
                    if key is not None:
                        stat[(key[0], c, e, key[1])] += n
                per_shard = Counter()
                for (op, chip, e, _j, x), k in dyn.items():
                    per_shard[(op, chip, e, x)] += k
                assert per_shard == stat, (lctx.spec.index, step, c)
                checked += 1
    assert checked == 4 * 2 * 4


def load_module_target(module):
    from fsedp_compiler.ir import module_target

    return module_target(module)


def test_dynamic_programs_do_not_depend_on_routing(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "-o", str(tmp_path / "dyn"))
    assert r.code == 0, r.err
    text = (tmp_path / "dyn" / "chiplet_0.fsa").read_text()
    assert "streams" in text and "when" in text and "where" in text
    # every chiplet runs the same template: the programs differ only in the header
    bodies = {(tmp_path / "dyn" / f"chiplet_{i}.fsa").read_text().split(".ports")[1].split("\n", 1)[1] for i in range(4)}
    assert len(bodies) == 1


def test_compile_without_target_says_which_default(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "-o", str(tmp_path / "d"))
    assert r.code == 0 and "using the default preset 'paper-2x2'" in r.err


def test_compile_errors(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--mode", "static", "-o", str(tmp_path / "x"))
    assert r.code == 2 and "static mode needs a routing trace" in r.err
    big = REPO / "examples" / "models" / "mixtral-8x7b.mlir"
    r = fsedpc("compile", str(big), "--target", "paper-2x2", "--shards-per-chiplet", "1", "-o", str(tmp_path / "y"))
    assert r.code == 2 and "SRAM too small" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())


def test_output_path_that_is_a_file(fsedpc, tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me")
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "-o", str(target))
    assert r.code == 2 and f"{target}: error: output path exists and is not a directory" in r.err
    assert target.read_text() == "keep me"
    r = fsedpc("simulate", str(target))
    assert r.code == 2 and "not a directory" in r.err and "Traceback" not in r.err
