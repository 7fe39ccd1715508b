"""Routing traces: file round trip and determinism, validation errors, synthetic statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.cli import main
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.trace_stats import trace_stats
from fsedp_compiler.inputs.trace_synth import parse_skew, synth_trace
from fsedp_compiler.inputs.traces import RoutingTrace, load_trace, save_trace, validate_trace

TINY_MLIR = Path(__file__).resolve().parent.parent / "examples" / "models" / "tiny-moe.mlir"


def make_model(
    num_experts: int = 16, top_k: int = 2, layers: tuple[int, ...] = (1, 3)
) -> ModelSpec:
    moe = tuple(MoeLayerSpec(i, 64, 128, num_experts, top_k) for i in layers)
    return ModelSpec("toy", max(layers) + 1, moe=moe)


def small_trace(**kw: object) -> RoutingTrace:
    args = {"tokens": 8, "steps": 3, "chiplets": 4, "skew": "zipf:1.0", "locality": 0.3, "seed": 5}
    args.update(kw)
    return synth_trace(make_model(), **args)  # type: ignore[arg-type]


def write_raw(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """An npz with exactly `arrays` (no casting), to feed load_trace malformed input."""
    np.savez(path, **arrays)
    return str(path)


def raw_arrays(trace: RoutingTrace) -> dict[str, np.ndarray]:
    return {
        "experts": trace.experts.copy(),
        "weights": trace.weights.copy(),
        "token_chiplet": trace.token_chiplet.copy(),
        "meta": np.array(json.dumps(trace.meta)),
    }


# --------------------------------------------------------------------------- file format


def test_round_trip(tmp_path: Path) -> None:
    trace = small_trace()
    path = tmp_path / "t.npz"
    save_trace(trace, str(path))
    back = load_trace(str(path), make_model())
    assert np.array_equal(back.experts, trace.experts) and back.experts.dtype == np.int32
    assert np.array_equal(back.weights, trace.weights) and back.weights.dtype == np.float32
    assert np.array_equal(back.token_chiplet, trace.token_chiplet)
    assert back.meta == trace.meta
    assert (back.num_layers, back.num_steps, back.num_tokens, back.top_k) == (2, 3, 8, 2)
    assert back.num_chiplets == 4 and back.layer_indices == (1, 3)
    ex, wt = back.step(1, 2)
    assert np.array_equal(ex, trace.experts[1, 2]) and wt.shape == (8, 2)
    # plain numpy can read it too
    with np.load(path) as npz:
        assert json.loads(str(npz["meta"][()]))["format"] == "fsedpc-trace"


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    save_trace(small_trace(), str(a))
    save_trace(small_trace(), str(b))
    save_trace(small_trace(seed=6), str(c))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_tokens_spread_in_contiguous_blocks() -> None:
    trace = small_trace(tokens=10, chiplets=4)
    assert trace.token_chiplet.tolist() == [t * 4 // 10 for t in range(10)]
    assert trace.tokens_on(0).tolist() == [0, 1, 2]
    assert sum(len(trace.tokens_on(c)) for c in range(4)) == 10


def test_meta_records_how_it_was_made() -> None:
    meta = small_trace().meta
    assert meta["source"] == "synth" and meta["skew"] == "zipf:1.0"
    assert meta["locality"] == 0.3 and meta["seed"] == 5 and meta["layers"] == [1, 3]


# --------------------------------------------------------------------------- validation


def _mutate(name: str, arrays: dict[str, np.ndarray]) -> None:
    meta = json.loads(str(arrays["meta"][()]))
    if name == "missing experts":
        del arrays["experts"]
    elif name == "missing meta":
        del arrays["meta"]
    elif name == "experts int64":
        arrays["experts"] = arrays["experts"].astype(np.int64)
    elif name == "experts ndim":
        arrays["experts"] = arrays["experts"][0]
    elif name == "weights float64":
        arrays["weights"] = arrays["weights"].astype(np.float64)
    elif name == "weights shape":
        arrays["weights"] = arrays["weights"][:, :, :4]
    elif name == "token_chiplet length":
        arrays["token_chiplet"] = arrays["token_chiplet"][:5]
    elif name == "token_chiplet dtype":
        arrays["token_chiplet"] = arrays["token_chiplet"].astype(np.float32)
    elif name == "expert too big":
        arrays["experts"][1, 2, 3, 0] = 16
    elif name == "expert negative":
        arrays["experts"][0, 0, 0, 1] = -1
    elif name == "duplicate expert":
        arrays["experts"][0, 1, 2, 1] = arrays["experts"][0, 1, 2, 0]
    elif name == "weight nan":
        arrays["weights"][0, 0, 1, 0] = np.nan
    elif name == "weight inf":
        arrays["weights"][1, 0, 1, 1] = np.inf
    elif name == "weight negative":
        arrays["weights"][0, 2, 0, 0] = -0.25
    elif name == "chiplet out of range":
        arrays["token_chiplet"][7] = 4
    elif name == "meta bad json":
        arrays["meta"] = np.array("{not json")
    elif name == "meta not string":
        arrays["meta"] = np.arange(3)
    elif name == "meta not object":
        arrays["meta"] = np.array("[1, 2]")
    else:
        if name == "meta missing field":
            del meta["num_experts"]
        elif name == "meta wrong format":
            meta["format"] = "something-else"
        elif name == "meta wrong version":
            meta["version"] = 2
        elif name == "meta steps mismatch":
            meta["steps"] = 4
        elif name == "meta layers count":
            meta["layers"] = [1]
        arrays["meta"] = np.array(json.dumps(meta))


BAD_CASES = [
    ("missing experts", "experts", "missing"),
    ("missing meta", "meta", "missing"),
    ("experts int64", "experts", "int32"),
    ("experts ndim", "experts", "4 dims"),
    ("weights float64", "weights", "float32"),
    ("weights shape", "weights", "differs from experts shape"),
    ("token_chiplet length", "token_chiplet", "one chiplet per token"),
    ("token_chiplet dtype", "token_chiplet", "int32"),
    ("expert too big", "experts", "outside [0, 16)"),
    ("expert negative", "experts", "outside [0, 16)"),
    ("duplicate expert", "experts", "twice"),
    ("weight nan", "weights", "not finite"),
    ("weight inf", "weights", "not finite"),
    ("weight negative", "weights", "negative"),
    ("chiplet out of range", "token_chiplet", "outside [0, 4)"),
    ("meta bad json", "meta", "invalid JSON"),
    ("meta not string", "meta", "0-d unicode"),
    ("meta not object", "meta", "JSON object"),
    ("meta missing field", "meta.num_experts", "missing"),
    ("meta wrong format", "meta.format", "fsedpc-trace"),
    ("meta wrong version", "meta.version", "unsupported"),
    ("meta steps mismatch", "meta.steps", "says 4"),
    ("meta layers count", "meta.layers", "says 1"),
]


@pytest.mark.parametrize(("case", "fld", "text"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_load_rejects(tmp_path: Path, case: str, fld: str, text: str) -> None:
    arrays = raw_arrays(small_trace())
    _mutate(case, arrays)
    path = write_raw(tmp_path / "bad.npz", arrays)
    with pytest.raises(FsedpError) as info:
        load_trace(path)
    err = info.value
    assert err.field == fld, str(err)
    assert text in err.message, str(err)
    assert str(err).startswith(f"{path}: error: {fld}: ")


def test_top_k_differs_from_model(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    save_trace(small_trace(), str(path))
    with pytest.raises(FsedpError, match="top_k") as info:
        load_trace(str(path), make_model(top_k=3))
    assert "top_k = 3" in str(info.value)


def test_layers_differ_from_model(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    save_trace(small_trace(), str(path))
    with pytest.raises(FsedpError) as info:
        load_trace(str(path), make_model(layers=(1, 2)))
    assert info.value.field == "meta.layers" and "[1, 3]" in str(info.value)


def test_num_experts_differs_from_model(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    save_trace(small_trace(), str(path))
    with pytest.raises(FsedpError) as info:
        load_trace(str(path), make_model(num_experts=32))
    assert info.value.field == "meta.num_experts"


def test_not_an_npz(tmp_path: Path) -> None:
    text = tmp_path / "t.npz"
    text.write_text("hello\n")
    with pytest.raises(FsedpError, match="not an .npz"):
        load_trace(str(text))
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(FsedpError, match="not an .npz"):
        load_trace(str(npy))
    with pytest.raises(FsedpError, match="not found"):
        load_trace(str(tmp_path / "missing.npz"))
    with pytest.raises(FsedpError, match="directory"):
        load_trace(str(tmp_path))


# --------------------------------------------------------------------------- synth arguments


@pytest.mark.parametrize(
    ("kw", "fld"),
    [
        ({"tokens": 0}, "--tokens"),
        ({"steps": 0}, "--steps"),
        ({"chiplets": 0}, "--chiplets"),
        ({"locality": 1.5}, "--locality"),
        ({"locality": -0.1}, "--locality"),
        ({"locality": float("nan")}, "--locality"),
        ({"seed": -1}, "--seed"),
        ({"skew": "zipf"}, "--skew"),
        ({"skew": "zipf:-1"}, "--skew"),
        ({"skew": "zipf:abc"}, "--skew"),
        ({"skew": "zipf:nan"}, "--skew"),
        ({"skew": "pareto:2"}, "--skew"),
    ],
)
def test_synth_rejects(kw: dict[str, object], fld: str) -> None:
    with pytest.raises(FsedpError) as info:
        small_trace(**kw)
    assert info.value.field == fld


def test_parse_skew() -> None:
    assert parse_skew("uniform") == 0.0
    assert parse_skew("zipf:1.2") == 1.2
    assert parse_skew(" ZIPF:0 ") == 0.0


def test_synth_needs_moe_layers() -> None:
    with pytest.raises(FsedpError, match="no MoE layers"):
        synth_trace(ModelSpec("dense", 2), 4, 2, 1, seed=0)


# --------------------------------------------------------------------------- synth statistics


@pytest.fixture(scope="module")
def big_model() -> ModelSpec:
    return make_model(num_experts=64, top_k=2, layers=(0,))


@pytest.mark.parametrize("exponent", [0.5, 1.0])
@pytest.mark.parametrize("locality", [0.0, 0.6])
def test_zipf_exponent_measured(big_model: ModelSpec, exponent: float, locality: float) -> None:
    trace = synth_trace(big_model, 512, 32, 8, skew=f"zipf:{exponent}", locality=locality, seed=1)
    fitted = trace_stats(trace)["layers"][0]["zipf_exponent"]
    assert abs(fitted - exponent) <= 0.15, fitted


@pytest.mark.parametrize("locality", [0.0, 0.3, 0.6])
@pytest.mark.parametrize("skew", ["uniform", "zipf:1.0"])
def test_locality_measured(big_model: ModelSpec, locality: float, skew: str) -> None:
    trace = synth_trace(big_model, 256, 32, 8, skew=skew, locality=locality, seed=2)
    measured = trace_stats(trace)["layers"][0]["locality"]
    assert abs(measured - locality) <= 0.05, measured


def test_full_locality_freezes_choices(big_model: ModelSpec) -> None:
    trace = synth_trace(big_model, 32, 4, 2, skew="zipf:1.0", locality=1.0, seed=3)
    ex = np.sort(trace.experts[0], axis=-1)
    assert (ex == ex[0]).all()


def test_uniform_is_balanced(big_model: ModelSpec) -> None:
    layer = trace_stats(synth_trace(big_model, 512, 32, 8, seed=4))["layers"][0]
    assert layer["max_mean_load"] < 1.2
    assert abs(layer["zipf_exponent"]) < 0.1
    assert layer["active_experts"] == pytest.approx(64, abs=0.5)


def test_stats_shape_and_fanout() -> None:
    trace = small_trace(steps=1)
    stats = trace_stats(trace)
    json.dumps(stats)  # plain JSON types only
    assert stats["num_layers"] == 2 and stats["meta"]["seed"] == 5
    for layer in stats["layers"]:
        assert sum(layer["load"]) == 8 * 1 * 2
        assert layer["locality"] is None  # one step: nothing to repeat
        assert 1 <= layer["mean_chiplets_per_expert"] <= 4
        assert 1 <= layer["active_experts"] <= 16


def test_fanout_by_hand() -> None:
    # 4 tokens on 2 chiplets; step 0: expert 0 used by tokens 0 and 3 (both chiplets).
    experts = np.array([[[[0, 1], [2, 3], [4, 5], [0, 6]]]], dtype=np.int32)
    meta = {"format": "fsedpc-trace", "version": 1, "model": "m", "layers": [0], "num_experts": 8,
            "top_k": 2, "chiplets": 2, "tokens": 4, "steps": 1, "source": "synth"}
    trace = RoutingTrace(experts, np.full(experts.shape, 0.5, np.float32),
                         np.array([0, 0, 1, 1], np.int32), meta)
    validate_trace(trace)
    layer = trace_stats(trace)["layers"][0]
    assert layer["active_experts"] == 7
    assert layer["mean_chiplets_per_expert"] == pytest.approx(8 / 7)
    assert layer["load"] == [2, 1, 1, 1, 1, 1, 1, 0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_experts=st.integers(1, 12),
    data=st.data(),
    tokens=st.integers(1, 9),
    steps=st.integers(1, 4),
    chiplets=st.integers(1, 5),
    locality=st.floats(0.0, 1.0),
    exponent=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**32),
)
def test_synth_always_valid(num_experts: int, data: st.DataObject, tokens: int, steps: int,
                            chiplets: int, locality: float, exponent: float, seed: int) -> None:
    top_k = data.draw(st.integers(1, num_experts))
    model = make_model(num_experts=num_experts, top_k=top_k)
    trace = synth_trace(model, tokens, steps, chiplets, skew=f"zipf:{exponent}",
                        locality=locality, seed=seed)
    validate_trace(trace, model)
    srt = np.sort(trace.experts, axis=-1)
    assert (np.diff(srt, axis=-1) > 0).all()
    assert ((trace.experts >= 0) & (trace.experts < num_experts)).all()
    assert np.allclose(trace.weights.sum(axis=-1, dtype=np.float64), 1.0, atol=1e-5)
    assert ((trace.token_chiplet >= 0) & (trace.token_chiplet < chiplets)).all()


# --------------------------------------------------------------------------- command line


def test_cli_stats_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.npz"
    save_trace(small_trace(), str(path))
    assert main(["trace", "stats", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out)  # exactly one JSON object
    assert len(stats["layers"]) == 2
    assert main(["trace", "stats", str(path)]) == 0
    assert "per-layer routing statistics" in capsys.readouterr().out


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["trace"], ["trace", "bogus"], ["trace", "synth"], ["trace", "stats"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    capsys.readouterr()


def test_cli_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.npz"
    bad.write_text("nope")
    assert main(["trace", "stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not an .npz" in err and "Traceback" not in err


@pytest.mark.skipif(not TINY_MLIR.exists(), reason="example model not present")
def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out1, out2 = tmp_path / "a.npz", tmp_path / "b.npz"
    base = ["trace", "synth", str(TINY_MLIR), "--tokens", "16", "--steps", "4", "--chiplets", "4",
            "--skew", "zipf:1.0", "--locality", "0.3", "--seed", "9"]
    assert main([*base, "-o", str(out1)]) == 0
    assert main([*base, "-o", str(out2)]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert main([*base[:-1], "11", "--skew", "zipf:oops", "-o", str(out1)]) == 2
    assert "--skew" in capsys.readouterr().err
