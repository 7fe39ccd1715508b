"""JSON Lines routing-dump import: token identification, step grouping, drops and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fsedp_compiler.cli import main
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_import import import_routing_jsonl
from fsedp_compiler.inputs.traces import load_trace, save_trace

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "traces" / "sample_routing.jsonl"


def model(layers: tuple[int, ...] = (1, 2), experts: int = 8, top_k: int = 2) -> ModelSpec:
    return ModelSpec("toy", max(layers) + 1,
                     moe=tuple(MoeLayerSpec(i, 64, 128, experts, top_k) for i in layers))


def rec(layer: int, pos: int, experts: list[int], **extra: object) -> dict[str, object]:
    return {"layer": layer, "token": pos, "experts": experts, "weights": [0.75, 0.25], **extra}


def dump(tmp_path: Path, records: list[dict[str, object]], name: str = "r.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def messy_records() -> list[dict[str, object]]:
    """Prefill 0..3 (layer-major, plus layer 9 the model lacks), then 5 decode tokens each
    logged at position 0 again; the last decode token lost its layer-2 record."""
    out = [rec(1, p, [p, p + 1], phase="prefill") for p in range(4)]
    out += [rec(9, p, [0, 1]) for p in range(4)]
    out += [rec(2, p, [p + 2, p + 3]) for p in range(4)]
    for d in range(5):
        out.append(rec(1, 0, [d, 7], step=d))
        if d < 4:
            out.append(rec(2, 0, [7, d], step=d, unknown={"nested": True}))
    return out


def test_messy_dump(tmp_path: Path) -> None:
    trace, report = import_routing_jsonl(dump(tmp_path, messy_records()), model(), 2, 3)
    assert report.records == 4 + 4 + 4 + 9
    assert report.records_unknown_layer == 4 and report.unknown_layers == [9]
    assert report.tokens_found == 9  # 4 prefill + 5 decode, all sharing positions 0..3
    assert report.tokens_missing_layers == 1
    assert report.tokens_incomplete_step == 2  # 8 complete tokens, steps of 3
    assert report.tokens_kept == 6 and report.steps == 2
    assert trace.experts.shape == (2, 2, 3, 2)
    # file order: prefill 0..3, then decode 0, 1 (each at position 0)
    layer1 = trace.experts[0].reshape(-1, 2).tolist()
    assert layer1 == [[0, 1], [1, 2], [2, 3], [3, 4], [0, 7], [1, 7]]
    layer2 = trace.experts[1].reshape(-1, 2).tolist()
    assert layer2 == [[2, 3], [3, 4], [4, 5], [5, 6], [7, 0], [7, 1]]
    assert trace.token_chiplet.tolist() == [0, 0, 1]
    assert trace.meta["source"] == "import" and trace.meta["input"] == "r.jsonl"
    assert trace.meta["dropped"] == {"records_unknown_layer": 4, "tokens_missing_layers": 1,
                                     "tokens_incomplete_step": 2}


def test_round_trip_after_import(tmp_path: Path) -> None:
    trace, _ = import_routing_jsonl(dump(tmp_path, messy_records()), model(), 2, 3)
    save_trace(trace, str(tmp_path / "t.npz"))
    back = load_trace(str(tmp_path / "t.npz"), model())
    assert np.array_equal(back.experts, trace.experts) and back.meta == trace.meta


def test_sample_file() -> None:
    trace, report = import_routing_jsonl(str(SAMPLE), model(), 2, 4)
    assert (report.records, report.records_unknown_layer, report.unknown_layers) == (26, 4, [7])
    assert report.tokens_found == 12
    assert report.tokens_missing_layers == 2
    assert report.tokens_incomplete_step == 2
    assert (report.tokens_kept, report.steps) == (8, 2)
    assert trace.experts.shape == (2, 2, 4, 2)
    # step 1: the two batched sequences logged at position 4, then decode tokens at position 0
    assert trace.experts[0, 1].tolist() == [[6, 3], [7, 1], [4, 3], [5, 7]]
    assert trace.experts[1, 1].tolist() == [[1, 0], [3, 2], [5, 4], [4, 7]]


def test_token_major(tmp_path: Path) -> None:
    records = [rec(layer, p, [p, layer + 3]) for p in range(4) for layer in (1, 2)]
    trace, report = import_routing_jsonl(dump(tmp_path, records), model(), 1, 2)
    assert report.tokens_found == 4 and report.steps == 2 and report.passes == 4
    assert trace.experts[:, :, :, 0].reshape(2, -1).tolist() == [[0, 1, 2, 3]] * 2


def test_same_position_in_one_pass_stays_two_tokens(tmp_path: Path) -> None:
    records = [rec(1, 5, [0, 1]), rec(1, 5, [2, 3]), rec(2, 5, [4, 5]), rec(2, 5, [6, 7])]
    trace, report = import_routing_jsonl(dump(tmp_path, records), model(), 1, 2)
    assert report.tokens_found == 2 and report.passes == 1
    assert trace.experts[:, 0].tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


def test_single_moe_layer_repeated_positions(tmp_path: Path) -> None:
    # with one MoE layer the layer never drops: occurrence order keeps tokens apart
    records = [rec(3, p, [p, 7]) for p in (0, 1, 2, 0, 0, 0)]
    _, report = import_routing_jsonl(dump(tmp_path, records), model(layers=(3,)), 1, 6)
    assert report.tokens_found == 6 and report.tokens_kept == 6


@pytest.mark.parametrize(
    "names",
    [
        ("layer_idx", "token_idx", "expert_ids", "gating_probs"),
        ("layer", "token_pos", "topk_ids", "topk_weights"),
        ("layer_idx", "token", "experts", "topk_weights"),
    ],
)
def test_alternative_field_names(tmp_path: Path, names: tuple[str, str, str, str]) -> None:
    records = [
        {names[0]: layer, names[1]: p, names[2]: [p, 5], names[3]: [0.6, 0.4], "extra": "ignored"}
        for p in range(2) for layer in (1, 2)
    ]
    trace, report = import_routing_jsonl(dump(tmp_path, records), model(), 1, 2)
    assert report.tokens_kept == 2
    assert trace.weights[0, 0, 0].tolist() == pytest.approx([0.6, 0.4])


def error_of(tmp_path: Path, lines: list[str], mdl: ModelSpec | None = None) -> FsedpError:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FsedpError) as info:
        import_routing_jsonl(str(path), mdl or model(), 1, 1)
    return info.value


def test_bad_json_line(tmp_path: Path) -> None:
    good = json.dumps(rec(1, 0, [0, 1]))
    err = error_of(tmp_path, [good, '{"layer": 1, "token": 0,, }'])
    assert (err.line, err.col) == (2, 25)  # the second comma
    assert str(err).startswith(f"{tmp_path / 'bad.jsonl'}:2:25: error: invalid JSON")


def _r(experts: object = (0, 1), weights: object = (1, 0), **kw: object) -> dict[str, object]:
    out: dict[str, object] = {"layer": 1, "token": 0, "experts": experts, "weights": weights}
    out.update(kw)
    return {key: list(v) if isinstance(v, tuple) else v for key, v in out.items() if v is not None}


@pytest.mark.parametrize(
    ("record", "fld", "text"),
    [
        (_r(layer=None), "layer", "no layer field"),
        (_r(token=None), "token", "no token field"),
        (_r(experts=None), "experts", "no experts field"),
        (_r(weights=None), "weights", "no weights field"),
        (_r((0, 1, 2), (1, 0, 0)), "top_k", "top_k is 2"),
        (_r((0, 8)), "experts", "outside [0, 8)"),
        (_r((3, 3)), "experts", "twice"),
        (_r(weights=(1,)), "weights", "1 weights for 2"),
        (_r(weights=(1, -0.5)), "weights", "non-negative"),
        (_r(weights=(1, "x")), "weights", "non-negative"),
        (_r(layer=-1), "layer", "non-negative"),
        (_r(experts=5), "experts", "expected a list"),
    ],
)
def test_bad_records(tmp_path: Path, record: dict[str, object], fld: str, text: str) -> None:
    err = error_of(tmp_path, [json.dumps(rec(1, 0, [0, 1])), "", json.dumps(record)])
    assert err.field == fld and err.line == 3, str(err)
    assert text in err.message, str(err)
    assert f"bad.jsonl:3: error: {fld}: " in str(err)


def test_non_object_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, ["[1, 2]"])
    assert err.line == 1 and "JSON object" in err.message


def test_too_few_tokens(tmp_path: Path) -> None:
    path = dump(tmp_path, [rec(1, 0, [0, 1]), rec(2, 0, [0, 1])])
    with pytest.raises(FsedpError, match="--tokens-per-step"):
        import_routing_jsonl(path, model(), 1, 4)


def test_bad_arguments(tmp_path: Path) -> None:
    path = dump(tmp_path, [rec(1, 0, [0, 1]), rec(2, 0, [0, 1])])
    with pytest.raises(FsedpError) as info:
        import_routing_jsonl(path, model(), 0, 1)
    assert info.value.field == "--chiplets"
    with pytest.raises(FsedpError, match="not found"):
        import_routing_jsonl(str(tmp_path / "nope.jsonl"), model(), 1, 1)


SAMPLE_MLIR = """builtin.module attributes {moe.model = "sample", moe.num_layers = 3 : i64} {
  moe.dense 0 attention flops_per_token 32768 weight_bytes 32768
  moe.dense 1 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 1 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 2 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 2 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
}
"""


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mlir = tmp_path / "sample.mlir"
    mlir.write_text(SAMPLE_MLIR)
    out = tmp_path / "t.npz"
    argv = ["trace", "import", str(SAMPLE), "--model", str(mlir), "--chiplets", "2",
            "--tokens-per-step", "4", "-o", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "tokens dropped: missing MoE layers" in text and "layers 7" in text
    assert load_trace(str(out)).num_steps == 2
    first = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == first
