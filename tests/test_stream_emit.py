"""A static program written a step at a time (emit-isa expanding `dataflow.layer`s into the
`.bin` files, `backends/stream_programs.py`) is byte for byte the one expanded into the IR
first, and the memory it takes does not grow with the number of steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from emit_support import SMALL_SPEC, traced_emit

from fsedp_compiler.backends.emit import FitsTextForms, emit, expansion_bound, instruction_count, moved_bytes
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.layers import layer_contexts
from fsedp_compiler.ir.modules import make_context, module_from_spec, print_module
from fsedp_compiler.ir.static_expansion import StaticExpansion
from fsedp_compiler.isa import BinWriter
from fsedp_compiler.pipeline.compile import compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.strategies import FSEDP

SPEC = ModelSpec("m", 3, (DenseSpec(0, 64, 64),),
                 (MoeLayerSpec(1, 16, 64, 12, 3, 1, 32), MoeLayerSpec(2, 16, 64, 12, 3, 0, 0)))


def _module(tmp_path: Path, steps: int, strategy: str = "fsedp", expand: bool = False, spec: ModelSpec = SPEC,
            tokens: int = 24):
    """The model lowered for `steps` routed steps on mesh-4x4; expanded into the IR if `expand`."""
    trace = tmp_path / f"r{steps}.npz"
    save_trace(synth_trace(spec, tokens, steps, 16, "zipf:0.8", 0.3, 5), str(trace))
    module = module_from_spec(spec)
    passes = compile_passes(strategy, target="mesh-4x4", trace=str(trace), mode="static", shards_per_chiplet=2)
    run_passes(make_context(), module, passes if expand else passes[:-1])
    return module


@pytest.mark.parametrize("strategy", sorted(FSEDP))
def test_step_ranges_equal_the_whole_expansion(strategy: str, tmp_path: Path) -> None:
    module = _module(tmp_path, 4, strategy)
    expansion = StaticExpansion(module, "test")
    for ctx in layer_contexts(module):
        layer = ctx.spec.index
        whole, offsets = expansion.columns(layer)
        for parts in ([range(s, s + 1) for s in range(4)], [range(0, 1), range(1, 3), range(3, 4)]):
            got = [expansion.columns(layer, r) for r in parts]
            for c in range(16):
                for f, _ in df.FIELDS:
                    joined = np.concatenate([cols[c][f] for cols, _ in got])
                    assert np.array_equal(joined, whole[c][f]), (layer, c, f)
                for (_, off), r in zip(got, parts):  # offsets index every step, empty outside the range
                    counts = np.diff(off[c])
                    assert np.array_equal(counts[r.start:r.stop], np.diff(offsets[c])[r.start:r.stop])
                    assert counts.sum() == counts[r.start:r.stop].sum()


@pytest.mark.parametrize("strategy", ["fsedp", "fsedp-onering", "ep"])
def test_streamed_programs_equal_expanded_ones(strategy: str, tmp_path: Path) -> None:
    """The step-at-a-time writer gives the bytes of the whole-program one, unexpanded layers
    (FSE-DP) or already expanded (a baseline), with the summary's DRAM and D2D bytes."""
    whole = _module(tmp_path, 3, strategy, expand=True)
    lazy = _module(tmp_path, 3, strategy, expand=strategy == "ep")
    want = emit(whole, str(tmp_path / "whole"), text=True)
    moved: dict[int, list[int]] = {}
    got = emit(lazy, str(tmp_path / "lazy"), text=False, moved=moved)
    for entry in want["programs"]:
        path = entry["bin"]
        assert (tmp_path / "lazy" / path).read_bytes() == (tmp_path / "whole" / path).read_bytes()
    assert [{k: v for k, v in e.items() if not k.startswith("fsa")} for e in want["programs"]] == got["programs"]
    assert want["files"] == got["files"]
    expected: dict[int, list[int]] = {}
    for op in whole.walk():
        if isinstance(op, df.InstructionsOp):
            entry = expected.setdefault(op.prop_int("layer"), [0, 0])
            dram, d2d = moved_bytes(op.columns())
            entry[0] += dram
            entry[1] += d2d
    assert moved == expected and all(dram > 0 for dram, _ in moved.values())
    assert expansion_bound(lazy) >= instruction_count(whole)


def test_small_program_left_to_its_text_forms(tmp_path: Path) -> None:
    """`text_limit`: a program that fits its text forms is not written (the directory stays)."""
    module = _module(tmp_path, 2)
    with pytest.raises(FitsTextForms):
        emit(module, str(tmp_path / "out"), text=False, text_limit=10**9)
    assert not (tmp_path / "out").exists()


def test_cli_streamed_equals_text_forms_run(fsedpc, tmp_path: Path) -> None:
    """`--text never` (expanded in emit-isa) writes the `.bin`s `--text always` writes (expanded in
    the IR), and `--text auto` of a small program still writes the text forms."""
    model = tmp_path / "m.mlir"
    model.write_text(print_module(module_from_spec(SPEC)))
    save_trace(synth_trace(SPEC, 24, 3, 16, "zipf:0.8", 0.3, 5), str(tmp_path / "t.npz"))
    outs = {}
    for text in ("never", "always", "auto"):
        out = tmp_path / text
        result = fsedpc("compile", str(model), "--target", "mesh-4x4", "--trace", str(tmp_path / "t.npz"),
                        "--text", text, "-o", str(out))
        assert result.code == 0, result.err
        outs[text] = result.out
    for path in (tmp_path / "always").glob("*.bin"):
        assert (tmp_path / "never" / path.name).read_bytes() == path.read_bytes()
        assert (tmp_path / "auto" / path.name).read_bytes() == path.read_bytes()
    assert (tmp_path / "auto" / "final.mlir").read_bytes() == (tmp_path / "always" / "final.mlir").read_bytes()
    assert not list((tmp_path / "never").glob("*.fsa"))
    table = [line for line in outs["always"].splitlines() if "│" in line]
    assert [line for line in outs["never"].splitlines() if "│" in line] == table


def _compile_peak(tmp_path: Path, steps: int, expand: bool) -> tuple[int, int]:
    """(tracemalloc peak of a static compile: passes, then emit-isa without text forms,
    instructions written) at `steps` steps; `expand`: expand-dataflow into the IR first."""
    trace = tmp_path / f"r{steps}.npz"
    save_trace(synth_trace(SMALL_SPEC, 48, steps, 16, "zipf:0.8", 0.3, 5), str(trace))
    passes = compile_passes("fsedp", target="mesh-4x4", trace=str(trace), mode="static", shards_per_chiplet=2)

    def build():
        module = module_from_spec(SMALL_SPEC)
        run_passes(make_context(), module, passes if expand else passes[:-1])
        return module

    return traced_emit(build, tmp_path / f"out{steps}{expand}")


def test_static_compile_memory_does_not_grow_with_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4x the steps: 4x the instructions written (32 bytes each in the `.bin`, 51 in the IR), and
    the peak of traced memory of the compile about the same: emit-isa holds one layer step (and
    each file's write buffer, a constant: made small here, where whole programs would fit in it);
    what grows with the steps is the schedule, the trace and the stream tables (10 bytes per
    instruction of this small model, whose streams are short; 4 on DeepSeek-V3). Expanded into the
    IR first, the peak grows with the instructions."""
    monkeypatch.setattr(BinWriter, "BUFFER", 64)
    _compile_peak(tmp_path, 1, expand=True)  # imports everything first: they are traced too
    peak2, count2 = _compile_peak(tmp_path, 2, expand=False)
    peak8, count8 = _compile_peak(tmp_path, 8, expand=False)
    assert count8 > 3.5 * count2
    assert peak8 - peak2 < 16 * (count8 - count2), (peak2, peak8, count2, count8)  # measured: 10
    whole2, _ = _compile_peak(tmp_path, 2, expand=True)
    whole8, _ = _compile_peak(tmp_path, 8, expand=True)
    assert whole8 - whole2 > 48 * (count8 - count2), (whole2, whole8, count2, count8)  # measured: 60


def test_bin_writer_equals_encode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks written through `BinWriter` (buffered, flushed, header last) make `encode`'s bytes;
    a bad record is reported at its index in the whole program."""
    from fsedp_compiler.isa import INSTR_DTYPE, Program, encode, record

    monkeypatch.setattr(BinWriter, "BUFFER", 3)
    rows = [record("dense", l=0, s=s, tokens=5 + s) for s in range(7)] + [record("halt")]
    whole = np.array(rows, dtype=INSTR_DTYPE)
    sink = BinWriter(tmp_path / "a.bin", 2, "static", (1, 3), 1)
    for lo, hi in ((0, 2), (2, 3), (3, 3), (3, 8)):
        sink.write(whole[lo:hi])
    digest = sink.close()
    want = encode(Program(2, "static", (1, 3), 1, whole))
    assert (tmp_path / "a.bin").read_bytes() == want and sink.count == 8
    assert digest == __import__("hashlib").sha256(want).hexdigest()
    bad = BinWriter(tmp_path / "b.bin", 0, "static", (1,), 0)
    bad.write(whole[:5])
    with pytest.raises(ValueError, match="chiplet 0: instruction 5: load references missing DRAM channel 0"):
        bad.write(np.array([record("load", ch=0, l=0, s=0, e=0, j=0)], dtype=INSTR_DTYPE))
        bad.close()
    bad.abandon()


def test_failed_streamed_emit_leaves_the_earlier_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error halfway through the step-at-a-time writer leaves no partial program: the earlier
    output stays as it was."""
    module = _module(tmp_path, 3)
    out = tmp_path / "out"
    emit(module, str(out), text=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []
    real = StaticExpansion.rows

    def failing(self, layer, steps=None):
        calls.append(layer)
        if len(calls) > 2:
            raise RuntimeError("disk on fire")
        return real(self, layer, steps)

    monkeypatch.setattr(StaticExpansion, "rows", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        emit(module, str(out), text=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cli_auto_falls_back_to_text_forms(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--text auto` when the schedule's bound says "maybe big" but the program turns out small:
    the streamed output is dropped and the program written again with its text forms, from the
    steps emit-isa made (read back into the IR, not expanded again)."""
    import fsedp_compiler.backends.emit as emit_module

    model = tmp_path / "m.mlir"
    model.write_text(print_module(module_from_spec(SPEC)))
    save_trace(synth_trace(SPEC, 24, 3, 16, "zipf:0.8", 0.3, 5), str(tmp_path / "t.npz"))
    args = ("compile", str(model), "--target", "mesh-4x4", "--trace", str(tmp_path / "t.npz"))
    assert fsedpc(*args, "--text", "always", "-o", str(tmp_path / "always")).code == 0
    monkeypatch.setattr(emit_module, "expansion_bound", lambda module: emit_module.TEXT_LIMIT + 1)
    result = fsedpc(*args, "-o", str(tmp_path / "auto"))
    assert result.code == 0, result.err
    assert "more than" not in result.err
    for path in (tmp_path / "always").iterdir():
        assert (tmp_path / "auto" / path.name).read_bytes() == path.read_bytes(), path.name
