"""The numpy MoE oracle: forward against a per-token loop, sharding, seeding, hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsedp_compiler import reference as ref
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import MoeLayerSpec

RTOL, ATOL = 1e-5, 1e-5  # float32 sums in another order differ by ~1e-6 where terms cancel


def layer_spec(activation: str = "swiglu", num_shared: int = 0, **kw: int) -> MoeLayerSpec:
    args = dict(index=3, d_model=16, d_ffn=24, num_experts=6, top_k=2)
    args.update(kw)
    return MoeLayerSpec(
        num_shared=num_shared,
        d_ffn_shared=args.pop("d_ffn_shared", 12 if num_shared else 0),
        activation=activation,
        **args,
    )


def loop_forward(x, experts, gates, layer, seed):
    """Token by token, expert by expert, in float64, straight from the definition."""

    def ffn(xt, w):
        up = xt @ w.w_up.astype(np.float64)
        if w.w_gate is None:
            h = 0.5 * up * (1 + np.tanh(math.sqrt(2 / math.pi) * (up + 0.044715 * up**3)))
        else:
            g = xt @ w.w_gate.astype(np.float64)
            h = g / (1.0 + np.exp(-g)) * up
        return h @ w.w_down.astype(np.float64)

    out = np.zeros(x.shape, dtype=np.float64)
    for t in range(x.shape[0]):
        xt = x[t].astype(np.float64)
        for k in range(experts.shape[1]):
            w = ref.expert_weights(layer, int(experts[t, k]), seed)
            out[t] += float(gates[t, k]) * ffn(xt, w)
        for s in range(layer.num_shared):
            out[t] += ffn(xt, ref.shared_expert_weights(layer, s, seed))
    return out


@pytest.mark.parametrize("activation", ["swiglu", "gelu"])
@pytest.mark.parametrize("num_shared", [0, 2])
def test_forward_matches_per_token_loop(activation: str, num_shared: int) -> None:
    layer = layer_spec(activation, num_shared)
    x = ref.token_activations(layer, 9, seed=7)
    experts, gates = ref.token_routing(layer, 9, seed=7)
    y = ref.moe_forward(x, experts, gates, layer, seed=7)
    assert y.dtype == np.float32 and y.shape == (9, layer.d_model)
    np.testing.assert_allclose(y, loop_forward(x, experts, gates, layer, 7), rtol=RTOL, atol=ATOL)
    # Outputs are O(1): the 1/sqrt(fan_in) scaling keeps them away from 0 and overflow.
    assert 0.05 < np.abs(y).mean() < 10


def test_forward_repeated_expert_and_explicit_gates() -> None:
    layer = layer_spec(top_k=3)
    x = ref.token_activations(layer, 4, seed=1)
    experts = np.array([[0, 0, 5], [5, 5, 5], [1, 2, 3], [4, 0, 4]])
    gates = np.array([[0.5, 0.25, 2.0], [1, 1, 1], [0, 0, 0], [-1, 0.3, 0.1]], dtype=np.float32)
    y = ref.moe_forward(x, experts, gates, layer, seed=1)
    np.testing.assert_allclose(y, loop_forward(x, experts, gates, layer, 1), rtol=RTOL, atol=ATOL)
    assert np.all(y[2] == 0)


@st.composite
def sharded_cases(draw):
    num_shards = draw(st.integers(1, 4))
    num_experts = draw(st.integers(1, 6))
    num_shared = draw(st.integers(0, 2))
    layer = MoeLayerSpec(
        index=draw(st.integers(0, 60)),
        d_model=draw(st.integers(1, 8)),
        d_ffn=num_shards * draw(st.integers(1, 4)),
        num_experts=num_experts,
        top_k=draw(st.integers(1, num_experts)),
        num_shared=num_shared,
        d_ffn_shared=num_shards * draw(st.integers(1, 3)) if num_shared else 0,
        activation=draw(st.sampled_from(["swiglu", "gelu"])),
    )
    tokens = draw(st.integers(0, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    experts = rng.integers(0, num_experts, size=(tokens, layer.top_k))  # repeats allowed
    gates = rng.random((tokens, layer.top_k), dtype=np.float32)
    return layer, tokens, seed, experts, gates, num_shards


@settings(max_examples=150, deadline=None)
@given(sharded_cases())
def test_sharded_sum_equals_unsharded(case) -> None:
    layer, tokens, seed, experts, gates, num_shards = case
    x = ref.token_activations(layer, tokens, seed)
    y = ref.moe_forward(x, experts, gates, layer, seed)
    ys = ref.moe_forward_sharded(x, experts, gates, layer, seed, num_shards)
    assert ys.dtype == np.float32 and ys.shape == (tokens, layer.d_model)
    np.testing.assert_allclose(ys, y, rtol=RTOL, atol=ATOL)
    direct = loop_forward(x, experts, gates, layer, seed)
    np.testing.assert_allclose(y, direct, rtol=RTOL, atol=ATOL)


@settings(max_examples=50, deadline=None)
@given(sharded_cases())
def test_shard_slices_concatenate_to_expert(case) -> None:
    layer, _, seed, _, _, num_shards = case
    w = ref.expert_weights(layer, layer.num_experts - 1, seed)
    shards = [ref.shard_weights(w, j, num_shards) for j in range(num_shards)]
    assert all(s.d_ffn == layer.d_ffn // num_shards for s in shards)
    np.testing.assert_array_equal(np.concatenate([s.w_up for s in shards], axis=1), w.w_up)
    np.testing.assert_array_equal(np.concatenate([s.w_down for s in shards], axis=0), w.w_down)
    if layer.activation == "swiglu":
        np.testing.assert_array_equal(np.concatenate([s.w_gate for s in shards], axis=1), w.w_gate)
    else:
        assert all(s.w_gate is None for s in shards)


def test_weights_deterministic_and_seed_dependent() -> None:
    layer = layer_spec(num_shared=1)
    a, b = ref.expert_weights(layer, 2, 11), ref.expert_weights(layer, 2, 11)
    for name in ("w_gate", "w_up", "w_down"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == np.float32
    assert not np.array_equal(a.w_up, ref.expert_weights(layer, 2, 12).w_up)
    assert not np.array_equal(a.w_up, ref.expert_weights(layer, 3, 11).w_up)
    other_layer = MoeLayerSpec(**{**layer.__dict__, "index": 4})
    assert not np.array_equal(a.w_up, ref.expert_weights(other_layer, 2, 11).w_up)
    # The key is documented, so a simulator may rebuild it: gate, then up, then down.
    rng = np.random.default_rng([11, layer.index, 2])
    gate = ((rng.random((24, 16), dtype=np.float32) * 2 - 1) * np.float32(math.sqrt(3) / math.sqrt(16))).T
    np.testing.assert_allclose(a.w_gate, gate, rtol=1e-6, atol=1e-7)
    assert abs(float(a.w_up.std()) * 4 - 1) < 0.1  # unit variance before the 1/sqrt(d) scale
    # Shared expert s is keyed as expert num_experts + s, with its own F.
    sh = ref.shared_expert_weights(layer, 0, 11)
    assert sh.w_up.shape == (16, 12) and sh.w_down.shape == (12, 16)
    rng = np.random.default_rng([11, layer.index, layer.num_experts])
    sh_gate = ((rng.random((12, 16), dtype=np.float32) * 2 - 1) * np.float32(math.sqrt(3) / math.sqrt(16))).T
    np.testing.assert_allclose(sh.w_gate, sh_gate, rtol=1e-6, atol=1e-7)
    gelu = ref.expert_weights(layer_spec("gelu"), 0, 11)
    assert gelu.w_gate is None and gelu.activation == "gelu"


def test_inputs_and_routing_seeded() -> None:
    layer = layer_spec()
    x = ref.token_activations(layer, 5, seed=3, step=1)
    assert x.dtype == np.float32 and x.shape == (5, 16)
    np.testing.assert_array_equal(x, ref.token_activations(layer, 5, seed=3, step=1))
    np.testing.assert_array_equal(x, ref.token_activations(layer, 8, seed=3, step=1)[:5])
    assert not np.array_equal(x, ref.token_activations(layer, 5, seed=3, step=2))
    assert not np.array_equal(x, ref.token_activations(layer, 5, seed=4, step=1))
    experts, gates = ref.token_routing(layer, 50, seed=3)
    assert experts.shape == gates.shape == (50, 2) and gates.dtype == np.float32
    assert np.all(experts[:, 0] != experts[:, 1])
    assert experts.min() >= 0 and experts.max() < layer.num_experts
    np.testing.assert_allclose(gates.sum(axis=1), 1, rtol=1e-6)
    e2, g2 = ref.token_routing(layer, 50, seed=3)
    np.testing.assert_array_equal(experts, e2)
    np.testing.assert_array_equal(gates, g2)
    assert ref.token_activations(layer, 0, seed=3).shape == (0, 16)
    empty = np.zeros((0, 16), np.float32)
    assert ref.moe_forward(empty, *ref.token_routing(layer, 0, 3), layer, 3).shape == (0, 16)


def test_shard_errors() -> None:
    w = ref.expert_weights(layer_spec(d_ffn=10), 0, 0)
    with pytest.raises(FsedpError, match="not divisible"):
        ref.shard_weights(w, 0, 3)
    with pytest.raises(FsedpError):
        ref.shard_weights(w, 2, 2)
    with pytest.raises(FsedpError):
        ref.shard_weights(w, 0, 0)
    layer = layer_spec(d_ffn=10, num_shared=1, d_ffn_shared=8)
    x = ref.token_activations(layer, 2, 0)
    experts, gates = ref.token_routing(layer, 2, 0)
    ref.moe_forward_sharded(x, experts, gates, layer, 0, 2)
    with pytest.raises(FsedpError, match="not divisible"):
        ref.moe_forward_sharded(x, experts, gates, layer, 0, 4)  # d_ffn 10
    with pytest.raises(FsedpError, match="not divisible"):
        ref.moe_forward_sharded(x, experts, gates, layer, 0, 5)  # d_ffn_shared 8


def test_input_errors() -> None:
    layer = layer_spec()
    x = ref.token_activations(layer, 2, 0)
    experts, gates = ref.token_routing(layer, 2, 0)
    with pytest.raises(FsedpError):
        ref.expert_weights(layer, layer.num_experts, 0)
    with pytest.raises(FsedpError):
        ref.shared_expert_weights(layer, 0, 0)  # layer has no shared experts
    with pytest.raises(FsedpError):
        ref.expert_weights(layer, 0, -1)
    with pytest.raises(FsedpError):
        ref.moe_forward(x, experts + layer.num_experts, gates, layer, 0)
    with pytest.raises(FsedpError):
        ref.moe_forward(x, experts[:, :1], gates[:, :1], layer, 0)
    with pytest.raises(FsedpError):
        ref.moe_forward(x[:, :4], experts, gates, layer, 0)
    with pytest.raises(FsedpError):
        ref.moe_forward(x, experts.astype(np.float32), gates, layer, 0)


# silu(1) = 1/(1+e^-1), silu(-1) = -1/(1+e), gelu_tanh(+-1) from the tanh formula.
SILU_1, SILU_M1 = 0.7310585786300049, -0.2689414213699951
GELU_1, GELU_M1 = 0.8411919906082768, -0.15880800939172324


def test_hand_computed_swiglu() -> None:
    # d=1, F=2: h = [silu(1)*2, silu(-1)*3]; y = h . [1, 1] = 2*silu(1) + 3*silu(-1).
    f32 = lambda a: np.array(a, dtype=np.float32)  # noqa: E731
    w = ref.ExpertWeights(f32([[1.0, -1.0]]), f32([[2.0, 3.0]]), f32([[1.0], [1.0]]))
    x = f32([[1.0], [0.0], [2.0]])
    y = ref.expert_forward(x, w)
    expect = 2 * SILU_1 + 3 * SILU_M1  # 0.655292...
    # x=2: 4*silu(2) + 6*silu(-2) = 4*1.7615942 - 6*0.2384058.
    np.testing.assert_allclose(y[:, 0], [expect, 0.0, 5.6159416], rtol=1e-6)
    assert abs(expect - 0.6552929) < 1e-6
    # Shard 0 holds F column 0, shard 1 column 1; their partials sum to the whole.
    p0 = ref.expert_forward(x[:1], ref.shard_weights(w, 0, 2))
    p1 = ref.expert_forward(x[:1], ref.shard_weights(w, 1, 2))
    np.testing.assert_allclose([p0[0, 0], p1[0, 0]], [2 * SILU_1, 3 * SILU_M1], rtol=1e-6)


def test_hand_computed_gelu_and_moe(monkeypatch: pytest.MonkeyPatch) -> None:
    f32 = lambda a: np.array(a, dtype=np.float32)  # noqa: E731
    # d=2, F=2, GELU: up = x @ I = x, y = gelu(x) @ [[1, 0], [0, -2]].
    wa = ref.ExpertWeights(None, f32([[1, 0], [0, 1]]), f32([[1, 0], [0, -2]]))
    # A second expert doubling everything, and a shared expert that is the identity on gelu.
    wb = ref.ExpertWeights(None, f32([[1, 0], [0, 1]]), f32([[2, 0], [0, 2]]))
    ws = ref.ExpertWeights(None, f32([[1, 0], [0, 1]]), f32([[1, 0], [0, 1]]))
    x = f32([[1.0, -1.0]])
    np.testing.assert_allclose(ref.expert_forward(x, wa), [[GELU_1, -2 * GELU_M1]], rtol=1e-6)

    layer = MoeLayerSpec(
        0, 2, 2, num_experts=2, top_k=2, num_shared=1, d_ffn_shared=2, activation="gelu"
    )
    monkeypatch.setattr(ref, "expert_weights", lambda layer, e, seed: (wa, wb)[e])
    monkeypatch.setattr(ref, "shared_expert_weights", lambda layer, s, seed: ws)
    experts, gates = np.array([[0, 1]]), f32([[0.75, 0.25]])
    y = ref.moe_forward(x, experts, gates, layer, seed=0)
    # 0.75*[g1, -2 g-1] + 0.25*[2 g1, 2 g-1] + [g1, g-1]
    expect = [0.75 * GELU_1 + 0.5 * GELU_1 + GELU_1, -1.5 * GELU_M1 + 0.5 * GELU_M1 + GELU_M1]
    np.testing.assert_allclose(y, [expect], rtol=1e-6)
    np.testing.assert_allclose(y, [[2.25 * 0.8411920, 0.0]], atol=1e-6)
    ys = ref.moe_forward_sharded(x, experts, gates, layer, 0, 2)
    np.testing.assert_allclose(ys, y, rtol=1e-6, atol=1e-7)


def test_activations_stable() -> None:
    big = np.array([-1000.0, -90.0, 0.0, 90.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ref.silu(big)
        g = ref.gelu_tanh(np.array([-10.0, 0.0, 10.0], dtype=np.float32))
    assert np.all(np.isfinite(s)) and s.dtype == np.float32
    np.testing.assert_allclose(s, [0, 0, 0, 90, 1000], atol=1e-30)
    np.testing.assert_allclose(g, [0, 0, 10], atol=1e-6)
