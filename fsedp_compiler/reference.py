"""The numpy oracle for one MoE layer: seeded weights and inputs, and the exact forward pass.

Functional simulations of compiled programs are checked against `moe_forward` with
`np.allclose(..., rtol=1e-5)` at float32. Everything here is float32 in and out, and
computes in float32.

Weights are never materialised for a whole layer: each expert's weights come from their
own generator, `np.random.default_rng([seed, layer.index, expert_id])` (unit-variance uniform
draws scaled by 1/sqrt(fan-in): gate, up, then down, each drawn as an [F, d] array, gate and up
then used transposed), so a simulator can fetch any one expert
(or one shard of it, via `shard_weights`) on demand; recent experts are cached. Shared expert `s`
uses expert id `layer.num_experts + s`.

FSE-DP shards each expert along its FFN dimension F into M equal shards; shard j holds the
gate/up columns and down rows [j*F/M, (j+1)*F/M). The activation is elementwise over F, so
the expert output is exactly the sum of the shards' partial outputs; `moe_forward_sharded`
computes it that way (it differs from `moe_forward` by float rounding only).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ACTIVATIONS, MoeLayerSpec

__all__ = [
    "ExpertWeights",
    "expert_forward",
    "expert_weights",
    "gelu_tanh",
    "moe_forward",
    "moe_forward_sharded",
    "shard_weights",
    "shared_expert_weights",
    "silu",
    "token_activations",
    "token_routing",
]

# numpy's SeedSequence pads keys shorter than 4 words with zeros, so [a, b, c] and
# [a, b, c, 0] give the same stream. Input and routing keys are [seed, index, step, tag]
# with a distinct non-zero tag, so they never collide with the 3-word expert keys.
_TAG_TOKENS = 1
_TAG_ROUTING = 2
_U32 = 2**32


@dataclass(frozen=True)
class ExpertWeights:
    """One expert's (or one shard's) float32 weights; `w_gate` is None for GELU experts."""

    w_gate: np.ndarray | None  # [d_model, F]
    w_up: np.ndarray  # [d_model, F]
    w_down: np.ndarray  # [F, d_model]

    @property
    def d_model(self) -> int:
        return int(self.w_up.shape[0])

    @property
    def d_ffn(self) -> int:
        return int(self.w_up.shape[1])

    @property
    def activation(self) -> str:
        return "gelu" if self.w_gate is None else "swiglu"


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x), exact for all x (overflow of exp(-x) for very negative x gives -0)."""
    with np.errstate(over="ignore"):
        return x / (np.float32(1) + np.exp(-x))


_GELU_C = np.float32(math.sqrt(2.0 / math.pi))
_GELU_A = np.float32(0.044715)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation (as in GPT-2 / `gelu_pytorch_tanh`), not erf."""
    half = np.float32(0.5)
    return half * x * (np.float32(1) + np.tanh(_GELU_C * (x + _GELU_A * x * x * x)))


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value < _U32:
        raise FsedpError(f"must be in [0, 2**32), got {value}", field=name)


_SQRT3 = np.float32(math.sqrt(3.0))
_CACHE_BYTES = 768 << 20
_cache: OrderedDict[tuple, ExpertWeights] = OrderedDict()
_cached_bytes = 0


def _uniform(rng: np.random.Generator, shape: tuple[int, int], scale: np.float32) -> np.ndarray:
    """Unit-variance uniform values on [-sqrt(3), sqrt(3)) times `scale` (3x faster than normal
    draws, which dominated functional runs of real-sized experts)."""
    out = rng.random(shape, dtype=np.float32)
    out *= np.float32(2) * _SQRT3 * scale
    out -= _SQRT3 * scale
    return out


def _generate(layer: MoeLayerSpec, expert_id: int, d_ffn: int, seed: int) -> ExpertWeights:
    global _cached_bytes
    _check_u32("seed", seed)
    _check_u32("layer.index", layer.index)
    if layer.activation not in ACTIVATIONS:
        raise FsedpError(f"unknown activation {layer.activation!r}", field="activation")
    d = layer.d_model
    key = (seed, layer.index, expert_id, d, d_ffn, layer.activation)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    rng = np.random.default_rng([seed, layer.index, expert_id])
    # Draw order is part of the contract: gate (SwiGLU only), then up, then down.
    in_scale = np.float32(1.0 / math.sqrt(d))
    out_scale = np.float32(1.0 / math.sqrt(d_ffn))
    # gate and up are drawn F-major ([F, d], returned as [d, F] views) so that a shard's columns
    # are contiguous memory: shard matmuls then run several times faster
    w_gate = None
    if layer.activation == "swiglu":
        w_gate = _uniform(rng, (d_ffn, d), in_scale).T
    w_up = _uniform(rng, (d_ffn, d), in_scale).T
    w_down = _uniform(rng, (d_ffn, d), out_scale)
    for a in (w_gate, w_up, w_down):
        if a is not None:
            a.setflags(write=False)  # shared by every caller through the cache
    w = ExpertWeights(w_gate, w_up, w_down)
    # a bounded cache of recent experts: a functional run and the reference forward ask for the
    # same experts over and over (least recently used first out)
    _cache[key] = w
    _cached_bytes += sum(a.nbytes for a in (w_gate, w_up, w_down) if a is not None)
    while _cached_bytes > _CACHE_BYTES and len(_cache) > 1:
        _, old = _cache.popitem(last=False)
        _cached_bytes -= sum(a.nbytes for a in (old.w_gate, old.w_up, old.w_down) if a is not None)
    return w


def expert_weights(layer: MoeLayerSpec, expert: int, seed: int) -> ExpertWeights:
    """Routed expert `expert`'s weights, generated from its own seeded stream."""
    if not 0 <= expert < layer.num_experts:
        raise FsedpError(f"expert {expert} out of range [0, {layer.num_experts})", field="expert")
    return _generate(layer, expert, layer.d_ffn, seed)


def shared_expert_weights(layer: MoeLayerSpec, s: int, seed: int) -> ExpertWeights:
    """Shared expert `s`'s weights (F = d_ffn_shared), keyed as expert num_experts + s."""
    if not 0 <= s < layer.num_shared:
        raise FsedpError(f"shared expert {s} out of range [0, {layer.num_shared})", field="shared")
    if layer.d_ffn_shared <= 0:
        raise FsedpError("layer has shared experts but d_ffn_shared is 0", field="d_ffn_shared")
    return _generate(layer, layer.num_experts + s, layer.d_ffn_shared, seed)


def shard_weights(w: ExpertWeights, shard: int, num_shards: int) -> ExpertWeights:
    """Shard `shard` of `num_shards` along F: gate/up columns and down rows of that F-slice.

    The result holds views into `w`, not copies.
    """
    f = w.d_ffn
    if num_shards <= 0:
        raise FsedpError(f"shard count must be positive, got {num_shards}", field="num_shards")
    if f % num_shards:
        raise FsedpError(
            f"FFN dimension {f} is not divisible by {num_shards} shards", field="num_shards"
        )
    if not 0 <= shard < num_shards:
        raise FsedpError(f"shard {shard} out of range [0, {num_shards})", field="shard")
    size = f // num_shards
    cols = slice(shard * size, (shard + 1) * size)
    gate = None if w.w_gate is None else w.w_gate[:, cols]
    return ExpertWeights(gate, w.w_up[:, cols], w.w_down[cols, :])


def expert_forward(x: np.ndarray, w: ExpertWeights) -> np.ndarray:
    """One expert (or one shard's partial output) on tokens x [T, d] -> [T, d].

    SwiGLU: (silu(x @ Wg) * (x @ Wu)) @ Wd.  GELU: gelu_tanh(x @ Wu) @ Wd.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != w.d_model:
        raise FsedpError(f"tokens must have shape [T, {w.d_model}], got {list(x.shape)}")
    up = x @ w.w_up
    if w.w_gate is None:
        h = gelu_tanh(up)
    else:
        h = silu(x @ w.w_gate) * up
    return h @ w.w_down


def token_activations(layer: MoeLayerSpec, tokens: int, seed: int, step: int = 0) -> np.ndarray:
    """Seeded standard-normal inputs [tokens, d_model] for `layer` at decode/prefill `step`.

    Row t does not depend on `tokens`: asking for more tokens only appends rows.
    """
    rng = _aux_rng(layer, tokens, seed, step, _TAG_TOKENS)
    return rng.standard_normal((tokens, layer.d_model), dtype=np.float32)


def token_routing(
    layer: MoeLayerSpec, tokens: int, seed: int, step: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded routing for tests and simulators: (experts [T, k] int64, gates [T, k] float32).

    Each token gets k distinct uniformly chosen experts; its gates are a softmax over k
    random logits, so they are positive and sum to 1 (top-k renormalised, as in Mixtral).
    """
    if not 0 < layer.top_k <= layer.num_experts:
        raise FsedpError(
            f"top_k {layer.top_k} must be in [1, num_experts={layer.num_experts}]", field="top_k"
        )
    rng = _aux_rng(layer, tokens, seed, step, _TAG_ROUTING)
    order = np.argsort(rng.random((tokens, layer.num_experts)), axis=1, kind="stable")
    experts = order[:, : layer.top_k].astype(np.int64)
    logits = rng.standard_normal((tokens, layer.top_k), dtype=np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    gates = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return experts, gates


def _aux_rng(
    layer: MoeLayerSpec, tokens: int, seed: int, step: int, tag: int
) -> np.random.Generator:
    if tokens < 0:
        raise FsedpError(f"token count must be non-negative, got {tokens}", field="tokens")
    _check_u32("seed", seed)
    _check_u32("layer.index", layer.index)
    _check_u32("step", step)
    return np.random.default_rng([seed, layer.index, step, tag])


def _check_routing(
    x: np.ndarray, experts: np.ndarray, gates: np.ndarray, layer: MoeLayerSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    experts = np.asarray(experts)
    gates = np.asarray(gates, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != layer.d_model:
        raise FsedpError(f"tokens must have shape [T, {layer.d_model}], got {list(x.shape)}")
    want = [x.shape[0], layer.top_k]
    if list(experts.shape) != want or list(gates.shape) != want:
        raise FsedpError(
            f"experts and gates must have shape {want}, "
            f"got {list(experts.shape)} and {list(gates.shape)}"
        )
    if experts.size and not np.issubdtype(experts.dtype, np.integer):
        raise FsedpError(f"expert ids must be integers, got {experts.dtype}")
    if experts.size and (experts.min() < 0 or experts.max() >= layer.num_experts):
        raise FsedpError(f"expert ids must be in [0, {layer.num_experts})")
    return x, experts.astype(np.int64), gates


def _moe(
    x: np.ndarray,
    experts: np.ndarray,
    gates: np.ndarray,
    layer: MoeLayerSpec,
    seed: int,
    num_shards: int | None,
) -> np.ndarray:
    x, experts, gates = _check_routing(x, experts, gates, layer)
    out = np.zeros_like(x)

    def add(rows: np.ndarray, scale: np.ndarray | None, w: ExpertWeights) -> None:
        # Unsharded: the whole expert at once. Sharded: each shard's partial output is
        # scaled and accumulated into its tokens' rows, as the FSE-DP reduce does.
        parts = [w] if num_shards is None else [
            shard_weights(w, j, num_shards) for j in range(num_shards)
        ]
        for part in parts:
            y = expert_forward(x[rows], part)
            if scale is not None:
                y *= scale[:, None]
            # add.at, not +=: a token routed twice to one expert has a repeated row.
            np.add.at(out, rows, y)

    for e in np.unique(experts):
        rows, slots = np.nonzero(experts == e)
        add(rows, gates[rows, slots], expert_weights(layer, int(e), seed))
    all_rows = np.arange(x.shape[0])
    for s in range(layer.num_shared):
        add(all_rows, None, shared_expert_weights(layer, s, seed))
    return out


def moe_forward(
    x: np.ndarray, experts: np.ndarray, gates: np.ndarray, layer: MoeLayerSpec, seed: int
) -> np.ndarray:
    """The MoE layer output [T, d]: sum_k gates[t,k] * expert_{experts[t,k]}(x_t) + shared.

    Shared experts are added unscaled (gate 1), as in DeepSeek-V2/V3; Qwen-MoE's sigmoid
    shared-expert gate is folded away. `gates` are used as given (no renormalisation); a
    repeated expert in one token's row counts once per occurrence. Tokens are grouped per
    expert so each expert's weights are generated and applied once.
    """
    return _moe(x, experts, gates, layer, seed, None)


def moe_forward_sharded(
    x: np.ndarray,
    experts: np.ndarray,
    gates: np.ndarray,
    layer: MoeLayerSpec,
    seed: int,
    num_shards: int,
) -> np.ndarray:
    """`moe_forward` computed the FSE-DP way: sum over F-shards of gated partial outputs.

    Every expert (shared ones too) is split into `num_shards` shards, so both d_ffn and
    d_ffn_shared must be divisible by it. Equal to `moe_forward` up to float rounding.
    """
    return _moe(x, experts, gates, layer, seed, num_shards)
