"""The numpy-column static expansion (`expand_columns`) equals the row-by-row one it replaced
(`expand_reference.py`) instruction for instruction: every FSE-DP policy, rings of 4 to 64 chiplets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import expand_reference as ref
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.layers import layer_contexts
from fsedp_compiler.ir.layout import build_layouts, fsedp_placement
from fsedp_compiler.ir.modules import make_context, module_from_spec, require_target
from fsedp_compiler.ir.static_schedule import static_steps
from fsedp_compiler.isa import port_maps
from fsedp_compiler.pipeline.compile import compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.strategies import FSEDP

REPO = Path(__file__).resolve().parent.parent
KIND_RANGES = [df.KINDS.index(k) for k in ("loads", "recvs", "sends", "ffns", "frees")]


def _check(module) -> int:
    """Compare every chiplet's ranges of every layer step with the reference; returns rows compared."""
    target = require_target(module, "test")
    n = target.num_chiplets
    ports = port_maps(target.edges, n)
    contexts = layer_contexts(module)
    layouts = build_layouts([c.plan for c in contexts], [fsedp_placement(c.plan) for c in contexts])
    ops = {(p.prop_int("chiplet"), o.prop_int("layer")): o for p in module.ops if isinstance(p, df.ProgramOp)
           for o in p.body.block.ops if isinstance(o, df.InstructionsOp)}
    compared = 0
    for ctx in contexts:
        for sched in static_steps(ctx, target):
            want = ref.step_ranges(sched, ctx, ports, n, layouts[ctx.spec.index])
            for c in range(n):
                op = ops[(c, ctx.spec.index)]
                off, cols = op.prop_array("offsets"), op.columns()
                lo, hi = int(off[sched.step]), int(off[sched.step + 1])
                got = np.stack([cols[f][lo:hi].astype(np.int64) for f, _ in df.FIELDS], axis=1)
                got = got[np.isin(got[:, 0], KIND_RANGES)]
                assert [tuple(r) for r in got.tolist()] == want[c], (ctx.spec.index, sched.step, c)
                assert cols["kind"][hi - 1] == df.KINDS.index("sync")
                compared += len(want[c])
    return compared


@pytest.mark.parametrize("strategy", sorted(FSEDP))
def test_columns_equal_rows_on_mesh(strategy: str, tmp_path: Path) -> None:
    spec = ModelSpec("m", 1, (DenseSpec(0, 64, 64),), (MoeLayerSpec(0, 16, 64, 12, 3, 1, 32),))
    save_trace(synth_trace(spec, 24, 3, 16, "zipf:0.8", 0.3, 5), str(tmp_path / "r.npz"))
    module = module_from_spec(spec)
    run_passes(make_context(), module, compile_passes(strategy, target="mesh-4x4", trace=str(tmp_path / "r.npz"),
                                                      mode="static", shards_per_chiplet=2))
    assert _check(module) > 100


@pytest.mark.parametrize("target,n", [("paper-2x2", 4), ("ring-8", 8), ("torus-4x4", 16)])
def test_columns_equal_rows_on_presets(target: str, n: int, tmp_path: Path) -> None:
    spec = ModelSpec("m", 2, (DenseSpec(0, 64, 64),), (MoeLayerSpec(1, 16, 96, 8, 2, 0, 0),))
    save_trace(synth_trace(spec, 16, 2, n, "zipf:0.5", 0.0, 2), str(tmp_path / "r.npz"))
    module = module_from_spec(spec)
    run_passes(make_context(), module, compile_passes("fsedp", target=target, trace=str(tmp_path / "r.npz"),
                                                      mode="static", shards_per_chiplet=3))
    assert _check(module) > 0
