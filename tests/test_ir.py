"""IR plumbing: spec <-> module, round trips of the shipped models, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir.modules import (
    load_model_spec,
    module_from_spec,
    module_text_from_spec,
    parse_module,
    print_module,
    spec_from_module,
)
from fsedp_compiler.inputs.model import DenseSpec, ModelSpec, MoeLayerSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MODELS = sorted((EXAMPLES / "models").glob("*.mlir"))


def test_examples_ship_models() -> None:
    assert len(MODELS) >= 9


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_model_round_trips_exactly(path: Path) -> None:
    text = path.read_text()
    module = parse_module(text, str(path))
    printed = print_module(module)
    assert printed == text
    generic = print_module(module, generic=True)
    assert print_module(parse_module(generic, "generic.mlir")) == text


def test_spec_module_spec_is_identity() -> None:
    spec = ModelSpec(
        name="m",
        num_layers=3,
        dense=(DenseSpec(0, 10, 20, "attention+mlp"), DenseSpec(1, 10, 20), DenseSpec(2, 10, 20)),
        moe=(MoeLayerSpec(1, 16, 32, 4, 2), MoeLayerSpec(2, 16, 32, 4, 1, 1, 64, "gelu", "int8")),
    )
    assert spec_from_module(module_from_spec(spec)) == spec
    text = module_text_from_spec(spec)
    assert spec_from_module(parse_module(text, "m.mlir")) == spec


def test_param_counts() -> None:
    layer = MoeLayerSpec(0, d_model=4096, d_ffn=14336, num_experts=8, top_k=2)
    assert layer.expert_params == 3 * 4096 * 14336
    assert layer.total_params == 8 * 3 * 4096 * 14336 + 4096 * 8
    assert layer.active_params == 2 * 3 * 4096 * 14336 + 4096 * 8
    assert layer.expert_bytes == 2 * layer.expert_params


@pytest.mark.parametrize(
    "body,expected",
    [
        ("  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n"
         "  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n",
         "m.mlir:3:3: error: 'moe.layer' duplicates layer index 0"),
        ("  moe.layer 7 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n",
         "m.mlir:2:3: error: 'moe.layer' layer index 7 is not below moe.num_layers = 2"),
        ("  moe.dense 0 attention flops_per_token 1 weight_bytes 1\n", "error: 'builtin.module' contains no moe.layer"),
    ],
)
def test_structural_errors_are_located(body: str, expected: str) -> None:
    text = 'builtin.module attributes {moe.model = "m", moe.num_layers = 2 : i64} {\n' + body + "}\n"
    with pytest.raises(FsedpError) as info:
        spec_from_module(parse_module(text, "m.mlir"), text)
    assert expected in str(info.value)


def test_missing_model_name() -> None:
    text = "builtin.module {\n  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n}\n"
    with pytest.raises(FsedpError, match="needs a string attribute 'moe.model'"):
        spec_from_module(parse_module(text, "m.mlir"), text)


def test_malformed_mlir_reports_file_line_col_without_traceback(fsedpc, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text('builtin.module attributes {moe.model = "m"} {\n  moe.layer 0 experts 4 top_k 1 d_model 8\n}\n')
    r = fsedpc("inspect", str(bad))
    assert r.code == 2
    assert f"{bad}:3:1: error: Expected 'd_ffn'" in r.err
    assert "Traceback" not in r.err


def test_unknown_op_is_located(fsedpc, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text('builtin.module attributes {moe.model = "m"} {\n  moe.expert 0\n}\n')
    r = fsedpc("inspect", str(bad))
    assert r.code == 2 and f"{bad}:2:14: error: Operation moe.expert is not registered" in r.err


def test_missing_file(fsedpc) -> None:
    r = fsedpc("inspect", "does/not/exist.mlir")
    assert r.code == 2 and "does/not/exist.mlir: error: MLIR file not found" in r.err


def test_load_model_spec_of_tiny() -> None:
    spec = load_model_spec(str(EXAMPLES / "models" / "tiny-moe.mlir"))
    assert spec.name == "tiny-moe" and len(spec.moe) == 4 and spec.moe[0].top_k == 2


def test_inspect_json_is_one_object_with_the_documented_keys(fsedpc) -> None:
    import json

    r = fsedpc("inspect", str(EXAMPLES / "models" / "deepseek-v2-lite.mlir"), "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["name"] == "deepseek-v2-lite" and data["num_layers"] == 27
    first = data["moe_layers"][0]
    assert {k: first[k] for k in ("index", "d_model", "d_ffn", "num_experts", "top_k", "num_shared_experts",
                                  "d_ffn_shared", "activation", "dtype")} == {
        "index": 1, "d_model": 2048, "d_ffn": 1408, "num_experts": 64, "top_k": 6, "num_shared_experts": 2,
        "d_ffn_shared": 1408, "activation": "swiglu", "dtype": "bf16"}
    assert len(data["moe_layers"]) == 26


def test_inspect_table(fsedpc) -> None:
    r = fsedpc("inspect", str(EXAMPLES / "models" / "mixtral-8x7b.mlir"))
    assert r.code == 0
    assert "32 decoder layers, 32 MoE layers" in r.out and "0-31" in r.out and "336.00 MiB" in r.out


# --- the xDSL 0.74 string-literal lexer hang (README: Known issues) -------------------------------

HANG_LINE = 'builtin.module attributes {moe.model = "tiny, moe.num_layers = 2 : i64} {'


@pytest.fixture
def no_hang():
    """Fail (instead of hanging for hours) when the test takes over 10 s: SIGALRM interrupts a regex."""
    import signal

    def expired(signum, frame):
        pytest.fail("took over 10 s: the string-literal pre-scan did not stop xDSL's lexer")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_unterminated_string_is_rejected_at_once_not_after_hours(tmp_path: Path) -> None:
    """Without the pre-scan, xDSL's string pattern backtracks ~4**30 times on this line: the
    subprocess (with a timeout, so that the test fails instead of hanging) must answer at once."""
    import subprocess
    import sys

    bad = tmp_path / "bad.mlir"
    name = "x" * 60
    bad.write_text(f'builtin.module attributes {{moe.model = "{name}, moe.num_layers = 2 : i64}} {{\n'
                   "  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n}\n")
    run = subprocess.run([sys.executable, "-m", "fsedp_compiler.cli", "inspect", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"fsedpc: {bad}:1:40: error: string literal is not closed on its line")
    assert run.stderr.splitlines()[2] == " " * 39 + "^" and "Traceback" not in run.stderr


def test_unterminated_string_error_names_line_column_and_shows_the_source(no_hang) -> None:
    text = f'// a "comment" with a " quote\n{HANG_LINE}\n  moe.layer 0\n}}\n'
    with pytest.raises(FsedpError) as err:
        parse_module(text, "m.mlir")
    assert str(err.value) == ("m.mlir:2:40: error: string literal is not closed on its line (a '\"' is missing)\n"
                              f"{HANG_LINE}\n{' ' * 39}^")


@pytest.mark.parametrize("literal, col, message", [
    (r'"ab\q"', 4, r"unknown escape sequence '\q'"),
    (r'"ab\4z"', 4, r"unknown escape sequence '\4'"),
    ('"ab\\', 1, "not closed on its line"),
    ('"ab\\"', 1, "not closed on its line"),  # the quote is escaped
    ('"', 1, "not closed on its line"),
])
def test_bad_string_literals_are_located(no_hang, literal: str, col: int, message: str) -> None:
    text = f"builtin.module attributes {{moe.model = {literal}\n}} {{\n}}\n"  # the literal ends its line
    with pytest.raises(FsedpError) as err:
        parse_module(text, "m.mlir")
    assert err.value.line == 1 and err.value.col == 39 + col and message in err.value.message


@pytest.mark.parametrize("literal", [r'"a\"b"', r'"a\\"', r'"\0A\41"', r'"tab	in"', '"a // not a comment"', '""'])
def test_good_string_literals_pass_the_pre_scan(literal: str) -> None:
    text = (f"builtin.module attributes {{moe.model = {literal}}} {{  // a \" in a comment\n"
            "  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu bf16\n}\n")
    spec_from_module(parse_module(text, "m.mlir"), text)


_XDSL_ALPHABET = ['a', '"', "\\", "\n", "n", "t", "0", "F", "g", "/", "\v"]


@given(st.lists(st.sampled_from(_XDSL_ALPHABET), max_size=10).map("".join))
def test_pre_scan_agrees_with_xdsl_on_short_strings(body: str) -> None:
    """The pre-scan accepts a string literal exactly when xDSL's own pattern does (on bodies short
    enough for xDSL's backtracking to stay cheap)."""
    from xdsl.utils.mlir_lexer import MLIRLexer

    from fsedp_compiler.ir.modules import check_string_literals

    text = '"' + body
    xdsl_ok = MLIRLexer._unescaped_characters_regex.match(text) is not None
    try:
        check_string_literals(text, "s.mlir")
        ours_ok = True
    except FsedpError:
        ours_ok = False
    if xdsl_ok:  # the literal closes; whatever follows it may still hold another bad string
        end = MLIRLexer._unescaped_characters_regex.match(text).end()
        rest_ok = True
        try:
            check_string_literals(text[end:], "s.mlir")
        except FsedpError:
            rest_ok = False
        assert ours_ok == rest_ok
    else:
        assert not ours_ok


def test_verify_each_names_the_pass_that_broke_the_module() -> None:
    """A pass whose output does not verify is reported with its name and the op's location."""
    from dataclasses import dataclass

    from xdsl.passes import ModulePass

    from fsedp_compiler.dialects.fsedp import StreamsOp
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.ir.modules import make_context, parse_module
    from fsedp_compiler.passes.attach_target import AttachTargetPass
    from fsedp_compiler.pipeline.driver import run_passes

    @dataclass(frozen=True)
    class BreakRing(ModulePass):
        name = "break-ring"

        def apply(self, ctx, op) -> None:
            op.body.block.add_op(StreamsOp.build(0, (0, 1, 2, 3), "paired", "balanced"))

    text = "builtin.module attributes {moe.model = \"m\", moe.num_layers = 1 : i64} {\n" \
           "  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16\n}\n"
    ctx = make_context()
    module = parse_module(text, "m.mlir", ctx)
    with pytest.raises(FsedpError, match="verification failed after pass 'break-ring': 'fsedp.streams' R1: the virtual "
                                         "ring is not a Hamiltonian cycle of paper-2x2"):
        run_passes(ctx, module, [AttachTargetPass(target="paper-2x2"), BreakRing()])
    # without verify-each the module is verified once, at the end of the pipeline
    with pytest.raises(FsedpError, match="verification failed after the pipeline: 'fsedp.streams' R1"):
        run_passes(ctx, parse_module(text, "m.mlir", ctx), [AttachTargetPass(target="paper-2x2"), BreakRing()],
                   verify_each=False)


def test_a_per_layer_op_must_name_an_existing_moe_layer(fsedpc, tmp_path: Path) -> None:
    """fsedp ops are tied to their moe.layer by its index: one naming a layer the module does not
    have is an error at its line, not silently ignored."""
    sharded = tmp_path / "sharded.mlir"
    r = fsedpc("opt", str(EXAMPLES / "models" / "tiny-moe.mlir"), "-p", "attach-target{target=paper-2x2},shard-experts",
               "-o", str(sharded))
    assert r.code == 0, r.err
    text = sharded.read_text()
    line = next(i for i, l in enumerate(text.split("\n"), 1) if "fsedp.shard_plan layer 1 " in l)
    bad = tmp_path / "bad.mlir"
    bad.write_text(text.replace("fsedp.shard_plan layer 1 ", "fsedp.shard_plan layer 9 ", 1))
    r = fsedpc("opt", str(bad), "-p", "lower-to-dataflow")
    assert r.code == 2
    assert f"bad.mlir:{line}:" in r.err and "layer 9: the module has no moe.layer with this index" in r.err
