"""IR plumbing: spec <-> module, round trips of the shipped models, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.ir import (
    load_model_spec,
    module_from_spec,
    module_text_from_spec,
    parse_module,
    print_module,
    spec_from_module,
)
from fsedp_compiler.model import DenseSpec, ModelSpec, MoeLayerSpec

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
