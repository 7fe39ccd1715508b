"""`import-hf`: the shipped Hugging Face configs against hand-checked shapes, costs and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsedp_compiler import cli
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.hf_import import import_hf_config, spec_from_hf_dict

HF = Path(__file__).resolve().parent.parent / "examples" / "hf"

# file: (num_layers, MoE layers, first MoE layer, experts, top_k, d_model, d_ffn,
#        shared experts, shared width, activation, dtype), read off each config.json by hand.
EXPECTED: dict[str, tuple[int, int, int, int, int, int, int, int, int, str, str]] = {
    "mixtral-8x7b.json": (32, 32, 0, 8, 2, 4096, 14336, 0, 0, "swiglu", "bf16"),
    "qwen1.5-moe-a2.7b.json": (24, 24, 0, 60, 4, 2048, 1408, 1, 5632, "swiglu", "bf16"),
    "qwen2-57b-a14b.json": (28, 28, 0, 64, 8, 3584, 2560, 1, 20480, "swiglu", "bf16"),
    "qwen3-30b-a3b.json": (48, 48, 0, 128, 8, 2048, 768, 0, 0, "swiglu", "bf16"),
    "deepseek-moe-16b.json": (28, 27, 1, 64, 6, 2048, 1408, 2, 1408, "swiglu", "bf16"),
    "deepseek-v2-lite.json": (27, 26, 1, 64, 6, 2048, 1408, 2, 1408, "swiglu", "bf16"),
    "deepseek-v3.json": (61, 58, 3, 256, 8, 7168, 2048, 1, 2048, "swiglu", "bf16"),
    "olmoe-1b-7b.json": (16, 16, 0, 64, 8, 2048, 1024, 0, 0, "swiglu", "bf16"),
    "phi-3.5-moe.json": (32, 32, 0, 16, 2, 4096, 6400, 0, 0, "swiglu", "bf16"),
    "gpt-oss-20b.json": (24, 24, 0, 32, 4, 2880, 2880, 0, 0, "swiglu", "bf16"),
    "llama-4-scout.json": (48, 48, 0, 16, 1, 5120, 8192, 1, 8192, "swiglu", "bf16"),
    "yuan2-m32.json": (24, 24, 0, 32, 2, 2048, 8192, 0, 0, "swiglu", "bf16"),
    "jamba-v0.1.json": (32, 16, 1, 16, 2, 4096, 14336, 0, 0, "swiglu", "bf16"),
}


def load(name: str) -> dict[str, Any]:
    return json.loads((HF / name).read_text(encoding="utf-8"))


def error_of(cfg: dict[str, Any], **kw: Any) -> FsedpError:
    with pytest.raises(FsedpError) as info:
        spec_from_hf_dict(cfg, "model/config.json", **kw)
    return info.value


def test_every_shipped_config_has_expectations() -> None:
    assert sorted(p.name for p in HF.glob("*.json")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 10


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config(name: str) -> None:
    layers, n_moe, first, *shape = EXPECTED[name]
    spec = import_hf_config(str(HF / name))
    assert spec.num_layers == layers
    assert [d.index for d in spec.dense] == list(range(layers))
    assert len(spec.moe) == n_moe
    assert spec.moe[0].index == first
    for layer in spec.moe:
        got = [layer.num_experts, layer.top_k, layer.d_model, layer.d_ffn,
               layer.num_shared, layer.d_ffn_shared, layer.activation, layer.dtype]
        assert got == shape
    for dense in spec.dense:
        assert dense.flops_per_token > 0 and dense.flops_per_token % 2 == 0
        assert dense.weight_bytes == dense.params * 2  # all shipped models import as bf16


def test_deepseek_v3_first_three_layers_are_dense() -> None:
    spec = import_hf_config(str(HF / "deepseek-v3.json"))
    assert [d.kind for d in spec.dense[:4]] == ["attention+mlp"] * 3 + ["attention"]
    assert {m.index for m in spec.moe} == set(range(3, 61))
    mla = 1536 * (7168 + 128 * 192) + 7168 * (512 + 64) + 512 * 128 * (128 + 128) + 128 * 128 * 7168
    assert spec.dense[3].params == mla
    assert spec.dense[0].params == mla + 3 * 7168 * 18432


def test_deepseek_v2_lite_mla_without_q_lora() -> None:
    spec = import_hf_config(str(HF / "deepseek-v2-lite.json"))
    q = 2048 * 16 * (128 + 64)
    kv = 2048 * (512 + 64) + 512 * 16 * (128 + 128)
    assert spec.dense[1].params == q + kv + 16 * 128 * 2048
    assert spec.dense[0].params == spec.dense[1].params + 3 * 2048 * 10944


def test_jamba_experts_every_period_and_attention_every_eighth() -> None:
    cfg = load("jamba-v0.1.json")
    spec = import_hf_config(str(HF / "jamba-v0.1.json"))
    period, offset = cfg["expert_layer_period"], cfg["expert_layer_offset"]
    assert [m.index for m in spec.moe] == list(range(offset, 32, period))
    attention = [d.index for d in spec.dense if d.kind.startswith("attention")]
    assert attention == [4, 12, 20, 28]
    kinds = {d.index: d.kind for d in spec.dense}
    assert [kinds[i] for i in (0, 1, 4, 5)] == ["mamba+mlp", "mamba", "attention+mlp", "mamba"]
    inner = 2 * 4096
    projections = 4096 * 2 * inner + inner * (256 + 32) + 256 * inner + inner * 4096
    mamba = projections + inner * 4 + inner * 16 + inner  # + depthwise conv, A, D
    assert spec.dense[1].params == mamba
    assert spec.dense[0].params == mamba + 3 * 4096 * 14336


def test_mixtral_gqa_attention_cost() -> None:
    spec = import_hf_config(str(HF / "mixtral-8x7b.json"))
    assert spec.dense[0].flops_per_token == 2 * (2 * 4096 * 4096 + 2 * 4096 * 1024)
    assert spec.dense[0].kind == "attention"


def test_totals_near_published_sizes() -> None:
    """Without embeddings: Mixtral ~46.4B, DeepSeek-V3 ~669B, Qwen3-30B-A3B ~29.9B total."""
    total = {n: import_hf_config(str(HF / n)).total_params / 1e9
             for n in ("mixtral-8x7b.json", "deepseek-v3.json", "qwen3-30b-a3b.json")}
    assert total["mixtral-8x7b.json"] == pytest.approx(46.4, abs=0.3)
    assert total["deepseek-v3.json"] == pytest.approx(669.2, abs=1.0)
    assert total["qwen3-30b-a3b.json"] == pytest.approx(29.9, abs=0.3)


def test_layers_truncation() -> None:
    path = str(HF / "deepseek-v3.json")
    spec = import_hf_config(path, 5)
    assert spec.num_layers == 5
    assert [d.index for d in spec.dense] == [0, 1, 2, 3, 4]
    assert [m.index for m in spec.moe] == [3, 4]
    assert import_hf_config(path, 1000).num_layers == 61


@pytest.mark.parametrize("layers", [0, -3])
def test_layers_below_one_is_an_error(layers: int) -> None:
    err = error_of(load("mixtral-8x7b.json"), layers=layers)
    assert "--layers" in str(err)


def test_layers_without_any_moe_layer_is_an_error() -> None:
    err = error_of(load("deepseek-v3.json"), layers=3)
    assert "first MoE layer is 3" in str(err)


@pytest.mark.parametrize(("name", "field"), [
    ("mixtral-8x7b.json", "num_local_experts"),
    ("deepseek-v3.json", "n_routed_experts"),
    ("qwen3-30b-a3b.json", "num_experts"),
])
def test_missing_expert_count_names_the_field(name: str, field: str) -> None:
    cfg = load(name)
    del cfg[field]
    err = error_of(cfg)
    assert err.field == field and field in str(err)


def test_missing_nested_fields_name_their_path() -> None:
    llama = load("llama-4-scout.json")
    del llama["text_config"]["num_local_experts"]
    assert error_of(llama).field == "text_config.num_local_experts"
    yuan = load("yuan2-m32.json")
    del yuan["moe_config"]["moe_top_k"]
    assert error_of(yuan).field == "moe_config.moe_top_k"


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_experts_per_tok"])
def test_missing_required_field(field: str) -> None:
    cfg = load("mixtral-8x7b.json")
    del cfg[field]
    err = error_of(cfg)
    assert err.field == field and f"{field}: required field is missing" in str(err)


@pytest.mark.parametrize(("field", "value", "text"), [
    ("hidden_size", "4096", "must be an integer"),
    ("hidden_size", True, "must be an integer"),
    ("num_hidden_layers", 0, "must be >= 1"),
    ("num_experts_per_tok", 9, "exceeds the 8 routed experts"),
    ("hidden_act", "tanh", "unsupported activation"),
    ("torch_dtype", "complex64", "unsupported dtype"),
])
def test_bad_field_values(field: str, value: object, text: str) -> None:
    err = error_of({**load("mixtral-8x7b.json"), field: value})
    assert err.field == field and text in str(err)


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5000), st.floats(allow_nan=False),
    st.text(max_size=8), st.lists(st.integers(-2, 70), max_size=5),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(EXPECTED)), data=st.data(), value=JSON_VALUES,
       delete=st.booleans())
def test_any_field_mangled_gives_a_spec_or_an_fsedp_error(name: str, data: st.DataObject,
                                                          value: object, delete: bool) -> None:
    """No KeyError/TypeError/ValueError escapes, whatever one field (top-level or nested) holds."""
    cfg = load(name)
    target = cfg
    for nested in ("text_config", "moe_config"):
        if nested in cfg and data.draw(st.booleans()):
            target = cfg[nested]
    key = data.draw(st.sampled_from(sorted(target)))
    if delete:
        del target[key]
    else:
        target[key] = value
    try:
        spec_from_hf_dict(cfg, "mangled/config.json")
    except FsedpError:
        pass


def test_unknown_family() -> None:
    err = error_of({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32})
    assert "unknown model family 'llama': no expert-count field (num_local_experts" in str(err)


def test_generic_config_with_common_names() -> None:
    cfg = {"model_type": "granitemoe", "hidden_size": 1024, "num_hidden_layers": 4,
           "num_attention_heads": 16, "num_local_experts": 32, "num_experts_per_tok": 8,
           "intermediate_size": 512, "hidden_act": "silu"}
    spec = spec_from_hf_dict(cfg, "granite/config.json")
    assert spec.name == "granite"
    shapes = [(m.num_experts, m.top_k, m.d_ffn, m.activation) for m in spec.moe]
    assert shapes == [(32, 8, 512, "swiglu")] * 4


def test_generic_placement_and_plain_gelu() -> None:
    cfg = {"model_type": "toy_moe", "hidden_size": 64, "num_hidden_layers": 6,
           "num_attention_heads": 4, "num_experts": 4, "num_experts_per_tok": 1,
           "moe_intermediate_size": 32, "intermediate_size": 128, "decoder_sparse_step": 2,
           "mlp_only_layers": [3], "hidden_act": "gelu_new"}
    spec = spec_from_hf_dict(cfg, "toy.json")
    assert [m.index for m in spec.moe] == [1, 5]
    assert spec.moe[0].activation == "gelu"
    assert spec.dense[0].params == 4 * 64 * 64 + 2 * 64 * 128


def test_float32_imports_as_bf16_with_a_note() -> None:
    spec = import_hf_config(str(HF / "olmoe-1b-7b.json"))
    assert spec.moe[0].dtype == "bf16"
    assert "float32" in spec.extra["notes"]


@pytest.mark.parametrize(("cfg", "path", "name", "expected"), [
    ({"_name_or_path": "org/My-Model/"}, "x.json", None, "My-Model"),
    ({}, "/models/Mixtral/config.json", None, "Mixtral"),
    ({}, "/models/mixtral-8x7b.json", None, "mixtral-8x7b"),
    ({"_name_or_path": "org/My-Model"}, "x.json", "given", "given"),
])
def test_model_name(cfg: dict[str, Any], path: str, name: str | None, expected: str) -> None:
    spec = spec_from_hf_dict({**load("mixtral-8x7b.json"), **cfg}, path, name=name)
    assert spec.name == expected


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "mixtral",\n  "hidden_size": 4096,,\n}\n', encoding="utf-8")
    with pytest.raises(FsedpError) as info:
        import_hf_config(str(path))
    err = info.value
    assert (err.line, err.col) == (3, 23)  # the second comma
    assert str(err).startswith(f"{path}:3:23: error: invalid JSON")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(FsedpError, match="JSON object"):
        import_hf_config(str(path))


@pytest.fixture
def cli_main() -> Any:
    """`cli.main` (it imports only the module of the command it runs)."""
    return cli.main


def test_cli_error_exit_code_and_message(cli_main: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load("mixtral-8x7b.json")
    del cfg["num_local_experts"]
    src, out = tmp_path / "config.json", tmp_path / "model.mlir"
    src.write_text(json.dumps(cfg), encoding="utf-8")
    assert cli_main(["import-hf", str(src), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "num_local_experts" in captured.err and "Traceback" not in captured.err
    assert not out.exists()


def test_cli_missing_file(cli_main: Any, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["import-hf", str(tmp_path / "nope.json")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_writes_a_module_that_reads_back(cli_main: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ir = pytest.importorskip("fsedp_compiler.ir.modules")
    if not hasattr(ir, "module_text_from_spec"):
        pytest.skip("fsedp_compiler.ir.modules.module_text_from_spec not written yet")
    out = tmp_path / "model.mlir"
    src = str(HF / "jamba-v0.1.json")
    assert cli_main(["import-hf", src, "-o", str(out), "--layers", "6", "--name", "jamba"]) == 0
    assert capsys.readouterr().out == ""
    back = ir.load_model_spec(str(out))
    spec = import_hf_config(src, 6, name="jamba")
    assert (back.name, back.num_layers) == (spec.name, 6)
    assert (back.dense, back.moe) == (spec.dense, spec.moe)
    assert cli_main(["import-hf", src, "--layers", "2"]) == 0
    assert capsys.readouterr().out.startswith("builtin.module")
