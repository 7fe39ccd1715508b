"""What a routing trace measures (`fsedpc trace stats`): per layer the expert load, its fitted Zipf
exponent, temporal locality and active experts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fsedp_compiler.inputs.traces import RoutingTrace


def fit_zipf(load: np.ndarray) -> float | None:
    """Zipf exponent: minus the least-squares slope of log load vs log rank (load > 0)."""
    pos = np.sort(load[load > 0])[::-1].astype(np.float64)
    if pos.size < 2:
        return None
    x = np.log(np.arange(1, pos.size + 1, dtype=np.float64))
    slope = np.polyfit(x, np.log(pos), 1)[0]
    return float(-slope)


def measured_locality(experts: np.ndarray) -> float | None:
    """Fraction of (token, slot) choices at steps ≥ 1 repeating the token's previous-step
    experts; `experts` is one layer's [steps, tokens, k]. None with a single step."""
    if experts.shape[0] < 2:
        return None
    hit = (experts[1:, :, :, None] == experts[:-1, :, None, :]).any(axis=-1)
    return float(hit.mean())


def layer_stats(
    experts: np.ndarray, token_chiplet: np.ndarray, num_experts: int, chiplets: int
) -> dict[str, Any]:
    """Statistics of one layer's [steps, tokens, k] choices (see `trace_stats`)."""
    steps, tokens, k = experts.shape
    load = np.bincount(experts.ravel(), minlength=num_experts)
    # need[s, e, c]: some token on chiplet c used expert e at step s.
    need = np.zeros((steps, num_experts, chiplets), dtype=bool)
    s_idx = np.broadcast_to(np.arange(steps)[:, None, None], experts.shape)
    c_idx = np.broadcast_to(token_chiplet[None, :, None], experts.shape)
    need[s_idx, experts, c_idx] = True
    fanout = need.sum(axis=2)
    active = fanout > 0
    mean_load = load.sum() / num_experts
    return {
        "load": load.tolist(),
        "zipf_exponent": fit_zipf(load),
        "max_mean_load": float(load.max() / mean_load) if mean_load else None,
        "locality": measured_locality(experts),
        "active_experts": float(active.sum(axis=1).mean()),
        "mean_chiplets_per_expert": float(fanout[active].mean()),
    }


def trace_stats(trace: RoutingTrace) -> dict[str, Any]:
    """Trace summary plus per-layer stats: expert load histogram (all steps), fitted Zipf
    exponent, max/mean load, measured locality, mean active experts A per step and mean
    |S_e| (distinct chiplets needing each active expert in a step)."""
    tc = trace.token_chiplet.astype(np.int64)
    return {
        "meta": dict(trace.meta),
        "num_layers": trace.num_layers, "steps": trace.num_steps, "tokens": trace.num_tokens,
        "top_k": trace.top_k, "num_experts": trace.num_experts, "chiplets": trace.num_chiplets,
        "layers": [
            {"layer": idx, **layer_stats(trace.experts[pos].astype(np.int64), tc,
                                         trace.num_experts, trace.num_chiplets)}
            for pos, idx in enumerate(trace.layer_indices)
        ],
    }
