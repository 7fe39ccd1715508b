"""Functional mode: the FFNs the simulator ran, on real numbers, against `reference.py`.

Every executed FFN op multiplies its shard's weight slice (seeded reference weights) with the
activations of its tokens (FSE-DP: the local tokens routed to its expert; strategies that move
tokens, e.g. EP and TP: the tokens the op names), scales by their gate weights (shared
experts: 1) and accumulates into those tokens' outputs, in execution order. At the end of each
layer step every token's output must equal the reference MoE forward of the same seeded inputs.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.reference import expert_forward, expert_weights, moe_forward, shard_weights, shared_expert_weights, token_activations
from fsedp_compiler.routing import RoutingTrace

from .loader import Loaded

RTOL = 1e-5
ATOL = 1e-5


class FunctionalMismatch(FsedpError):
    """A token's simulated output differs from the reference forward."""


def check_functional(loaded: Loaded, trace: RoutingTrace,
                     ffn_log: list[tuple[int, int, int, int, int, tuple[int, ...] | None]],
                     seed: int = 0) -> int:
    """Replay the executed FFNs numerically; returns the number of (layer, step) checked."""
    by_step: dict[tuple[int, int], list[tuple[int, int, int, tuple[int, ...] | None]]] = defaultdict(list)
    for layer, step, chiplet, expert, shard, tokens in ffn_log:
        by_step[(layer, step)].append((chiplet, expert, shard, tokens))
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    checked = 0
    for (layer, step), ops in sorted(by_step.items()):
        spec, plan = loaded.specs[layer], loaded.plans[layer]
        experts, gates = trace.step(positions[layer], step)
        tokens = trace.num_tokens
        x = token_activations(spec, tokens, seed, step)
        out = np.zeros_like(x)
        weights: dict[int, object] = {}
        for chiplet, e, j, toks in ops:
            if e not in weights:
                weights[e] = (shared_expert_weights(spec, e - spec.num_experts, seed) if e >= spec.num_experts
                              else expert_weights(spec, e, seed))
            if toks is None:  # FSE-DP: the chiplet's own tokens
                local = trace.token_chiplet == chiplet
            else:  # computed away from the tokens (EP, TP): exactly the tokens the op names
                local = np.zeros(tokens, dtype=bool)
                local[list(toks)] = True
            if e >= spec.num_experts:
                idx = np.flatnonzero(local)
                g = np.ones(len(idx), dtype=np.float32)
            else:
                hit = (experts == e) & local[:, None]
                idx = np.flatnonzero(hit.any(axis=1))
                g = (gates * hit).sum(axis=1)[idx].astype(np.float32)
            if len(idx) == 0:
                continue
            out[idx] += expert_forward(x[idx], shard_weights(weights[e], j, plan.num_shards)) * g[:, None]
        ref = moe_forward(x, experts, gates, spec, seed)
        bad = ~np.isclose(out, ref, rtol=RTOL, atol=ATOL).all(axis=1)
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            contributions = _token_contributions(t, ops, x, experts, gates, trace.token_chiplet, spec, plan, weights)
            raise FunctionalMismatch(_explain(t, layer, step, x, experts, gates, spec, seed, weights, contributions,
                                              float(np.abs(out[t] - ref[t]).max())))
        checked += 1
    return checked


def _token_contributions(t, ops, x, experts, gates, token_chiplet, spec, plan, weights) -> dict:
    """Per expert, what the executed ops added to token t (only computed to explain a mismatch)."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for chiplet, e, j, toks in ops:
        if (chiplet != token_chiplet[t]) if toks is None else (t not in toks):
            continue
        if e >= spec.num_experts:
            g = 1.0
        elif e in experts[t]:
            g = float(gates[t][list(experts[t]).index(e)])
        else:
            continue
        row = expert_forward(x[t:t + 1], shard_weights(weights[e], j, plan.num_shards))[0] * g
        out[(t, e)] = out.get((t, e), 0) + row
    return out


def _explain(t, layer, step, x, experts, gates, spec, seed, weights, contributions, err) -> str:
    """Name the expert whose contribution to token t is wrong (or missing)."""
    wanted = {int(e): float(g) for e, g in zip(experts[t], gates[t])}
    wanted.update({spec.num_experts + s: 1.0 for s in range(spec.num_shared)})
    for e, g in sorted(wanted.items()):
        w = (shared_expert_weights(spec, e - spec.num_experts, seed) if e >= spec.num_experts
             else expert_weights(spec, e, seed))
        expect = expert_forward(x[t:t + 1], w)[0] * g
        got = contributions.get((t, e))
        if got is None or not np.allclose(got, expect, rtol=RTOL, atol=ATOL):
            return (f"functional mismatch: token {t}, layer {layer}, step {step}, expert {e}: "
                    f"{'missing' if got is None else 'wrong'} contribution (max error {err:.3g})")
    extra = sorted({e for (tok, e) in contributions if tok == t} - set(wanted))
    return (f"functional mismatch: token {t}, layer {layer}, step {step}, expert {extra[0] if extra else '?'}: "
            f"unexpected contribution (max error {err:.3g})")
