"""A baseline program lowered a step at a time by emit-isa (`LowerBaselineOpsPass`, then the
streamed `.bin` writer) is byte for byte the one lowered into the IR first; its memory does not
grow with the number of steps; and `--text auto` of a small program makes its last lowering once."""

from __future__ import annotations

from pathlib import Path

import pytest
from emit_support import SMALL_SPEC, traced_emit

from fsedp_compiler.backends.emit import FitsTextForms, emit, moved_bytes
from fsedp_compiler.baselines.expansion import BaselineExpansion
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import make_context, module_from_spec, print_module
from fsedp_compiler.ir.static_expansion import StaticExpansion
from fsedp_compiler.isa import BinWriter
from fsedp_compiler.passes.lower_baseline import LowerBaselineOpsPass
from fsedp_compiler.pipeline.compile import compile_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.strategies import BASELINES

SPEC = ModelSpec("m", 5, (DenseSpec(0, 64, 64), DenseSpec(2, 64, 64)),
                 (MoeLayerSpec(1, 16, 64, 12, 3, 1, 32), MoeLayerSpec(3, 16, 64, 12, 3, 0, 0),
                  MoeLayerSpec(4, 16, 64, 12, 3, 0, 0)))


def _trace(tmp_path: Path, steps: int, spec: ModelSpec = SPEC, tokens: int = 24) -> Path:
    path = tmp_path / f"r{steps}-{tokens}.npz"
    save_trace(synth_trace(spec, tokens, steps, 16, "zipf:0.8", 0.3, 5), str(path))
    return path


def _module(trace: Path, strategy: str, lower: bool, spec: ModelSpec = SPEC, skip_single: bool = False):
    """The model for `trace` on mesh-4x4 by baseline `strategy`: lowered into the IR if `lower`,
    else with the layers' ops only (emit-isa lowers their instructions)."""
    module = module_from_spec(spec)
    passes = compile_passes(strategy, target="mesh-4x4", trace=str(trace), mode="static", shards_per_chiplet=2,
                            hydra_skip_single=skip_single)
    if not lower:
        last = passes[-1]
        passes = passes[:-1] + [LowerBaselineOpsPass(strategy=last.strategy, trace=last.trace,
                                                     hydra_skip_single=last.hydra_skip_single)]
    run_passes(make_context(), module, passes)
    return module


@pytest.mark.parametrize(("strategy", "skip_single"), [*((s, False) for s in sorted(BASELINES)), ("hydra", True)])
def test_streamed_baseline_equals_lowered_one(strategy: str, skip_single: bool, tmp_path: Path) -> None:
    """Every file of the streamed output is the in-IR one's, with the summary's DRAM and D2D bytes."""
    trace = _trace(tmp_path, 3)
    whole = _module(trace, strategy, True, skip_single=skip_single)
    lazy = _module(trace, strategy, False, skip_single=skip_single)
    assert not [op for op in lazy.walk() if isinstance(op, df.InstructionsOp)]
    emit(whole, str(tmp_path / "whole"), text=False)
    moved: dict[int, list[int]] = {}
    emit(lazy, str(tmp_path / "lazy"), text=False, moved=moved)
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "lazy").iterdir())
    for name in names:
        assert (tmp_path / "lazy" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    expected: dict[int, list[int]] = {}
    for op in whole.walk():
        if isinstance(op, df.InstructionsOp):
            entry = expected.setdefault(op.prop_int("layer"), [0, 0])
            for i, amount in enumerate(moved_bytes(op.columns())):
                entry[i] += amount
    assert moved == expected


def test_made_steps_into_ir_equal_the_lowering(tmp_path: Path) -> None:
    """A small program's streamed emit hands back what it made; put into the IR it prints as the
    lowering into the IR does (final.mlir)."""
    trace = _trace(tmp_path, 2)
    whole = _module(trace, "ep-cache", True)
    lazy = _module(trace, "ep-cache", False)
    with pytest.raises(FitsTextForms) as small:
        emit(lazy, str(tmp_path / "out"), text=False, text_limit=10**9)
    assert not (tmp_path / "out").exists()
    small.value.made.into_ir(lazy)
    assert print_module(lazy) == print_module(whole)


def test_unlowered_baseline_needs_streaming(tmp_path: Path) -> None:
    """The whole-program writer (text forms) does not drop a layer left to emit-isa."""
    lazy = _module(_trace(tmp_path, 1), "tp", False)
    with pytest.raises(FsedpError, match="run lower-baseline"):
        emit(lazy, str(tmp_path / "out"), text=True)
    assert not (tmp_path / "out").exists()


def _compile_peak(tmp_path: Path, steps: int, lower: bool) -> tuple[int, int]:
    """(tracemalloc peak of an ep compile written without text forms, instructions written)."""
    trace = _trace(tmp_path, steps, SMALL_SPEC, 48)
    return traced_emit(lambda: _module(trace, "ep", lower, SMALL_SPEC), tmp_path / f"out{steps}{lower}")


def test_baseline_compile_memory_does_not_grow_with_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4x the steps, 4x the instructions: lowered by emit-isa, the peak of traced memory grows by
    the routing (a few bytes per instruction); lowered into the IR first, by far more."""
    monkeypatch.setattr(BinWriter, "BUFFER", 64)
    _compile_peak(tmp_path, 1, lower=True)  # imports everything first: they are traced too
    peak2, count2 = _compile_peak(tmp_path, 2, lower=False)
    peak8, count8 = _compile_peak(tmp_path, 8, lower=False)
    assert count8 > 3.5 * count2
    whole2, _ = _compile_peak(tmp_path, 2, lower=True)
    whole8, _ = _compile_peak(tmp_path, 8, lower=True)
    assert peak8 - peak2 < 16 * (count8 - count2), (peak2, peak8, count2, count8)
    assert whole8 - whole2 > 48 * (count8 - count2), (whole2, whole8, count2, count8)


def test_failed_streamed_baseline_leaves_the_earlier_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error halfway through the lowering in emit-isa leaves the earlier output as it was."""
    module = _module(_trace(tmp_path, 3), "ep", False)
    out = tmp_path / "out"
    emit(module, str(out), text=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = BaselineExpansion.steps

    def failing(self, layer):
        for i, rows in enumerate(real(self, layer)):
            if layer == 3 and i == 1:
                raise RuntimeError("disk on fire")
            yield rows

    monkeypatch.setattr(BaselineExpansion, "steps", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        emit(module, str(out), text=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def _count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(cls, name)

    def counted(self, layer, *rest):
        calls.append(layer)
        return real(self, layer, *rest)

    monkeypatch.setattr(cls, name, counted)
    return calls


@pytest.mark.parametrize("strategy", ["ep", "fsedp"])
def test_cli_text_auto_makes_a_small_program_once(strategy: str, fsedpc, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--text auto` of a program the bound cannot call small (a baseline: no bound; FSE-DP: made
    to say "maybe big") that is small: every file is `--text always`'s, the last lowering made
    once (in emit-isa, then put into the IR), and `--text never` writes the same `.bin`s."""
    import fsedp_compiler.backends.emit as emit_module

    model = tmp_path / "m.mlir"
    model.write_text(print_module(module_from_spec(SPEC)))
    args = ("compile", str(model), "--target", "mesh-4x4", "--trace", str(_trace(tmp_path, 3)), "--strategy", strategy)
    outs = {}
    for text in ("always", "never"):
        result = fsedpc(*args, "--text", text, "-o", str(tmp_path / text))
        assert result.code == 0, result.err
        outs[text] = result.out
    monkeypatch.setattr(emit_module, "expansion_bound", lambda module: emit_module.TEXT_LIMIT + 1)
    made = _count_calls(monkeypatch, BaselineExpansion, "steps") if strategy == "ep" else \
        _count_calls(monkeypatch, StaticExpansion, "rows")
    whole = _count_calls(monkeypatch, StaticExpansion, "columns")
    result = fsedpc(*args, "-o", str(tmp_path / "auto"))
    assert result.code == 0, result.err
    assert "more than" not in result.err and result.out == outs["always"]
    assert len(made) == (3 if strategy == "ep" else 3 * 3) and whole == []
    for path in (tmp_path / "always").iterdir():
        assert (tmp_path / "auto" / path.name).read_bytes() == path.read_bytes(), path.name
    for path in (tmp_path / "never").iterdir():
        if path.name != "program.json":
            assert (tmp_path / "always" / path.name).read_bytes() == path.read_bytes(), path.name
    table = [line for line in outs["always"].splitlines() if "│" in line]
    assert [line for line in outs["never"].splitlines() if "│" in line] == table


@pytest.mark.parametrize("picks", [{0: "tp", 1: "fsedp", 2: "ep"}, {0: "fsedp", 1: "dp", 2: "fsedp-nocomp"},
                                   {0: "ep-cache", 1: "ep-cache", 2: "hydra"}])
def test_spliced_before_the_last_lowering_equals_spliced_after(picks: dict[int, str], tmp_path: Path) -> None:
    """`--strategy auto` without text forms splices the layers before their last lowering and
    emit-isa makes them in the spliced program's DRAM image: the files of the splice of lowered
    layers (relocated); small, what emit-isa made put into the IR prints as that splice."""
    from test_auto import SIX, six_trace

    from fsedp_compiler.ir.modules import parse_module, verify_module
    from fsedp_compiler.pipeline.auto import lower_picks
    from fsedp_compiler.pipeline.compile import last_lowering_left, plan_passes, strategy_passes

    trace = str(six_trace(tmp_path))
    modules = []
    for defer in (False, True):
        ctx = make_context()
        module = parse_module(SIX, "six.mlir", ctx)
        run_passes(ctx, module, plan_passes(target="paper-2x2"))
        module = lower_picks(ctx, module, picks, lambda s: (last_lowering_left if defer else list)(
            strategy_passes(s, trace=trace, mode="static")))
        verify_module(module)
        emit(module, str(tmp_path / f"out{defer}"), strategy="auto", layer_strategies=picks, text=False)
        modules.append(module)
    names = sorted(p.name for p in (tmp_path / "outFalse").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "outTrue").iterdir())
    for name in names:
        assert (tmp_path / "outTrue" / name).read_bytes() == (tmp_path / "outFalse" / name).read_bytes(), name
    with pytest.raises(FitsTextForms) as small:
        emit(modules[1], str(tmp_path / "small"), strategy="auto", layer_strategies=picks, text=False,
             text_limit=10**9)
    small.value.made.into_ir(modules[1])
    verify_module(modules[1])
    assert print_module(modules[1]) == print_module(modules[0])
