"""Seeded synthetic routing traces (`fsedpc trace synth`).

`synth_trace` has two knobs, both measured back by `trace_stats`:

* skew `zipf:A` -- per layer a seeded random permutation ranks the experts and the expert
  of rank r gets popularity p(r) ∝ r^-A (`uniform` is A = 0). Each token picks k distinct
  experts per step, expert e with probability π_e = k·p(e), so the expert load histogram
  is Zipf with exponent A (what `trace_stats` fits back).
* locality `P` -- the fraction of (token, slot) choices at steps ≥ 1 that repeat an expert
  the same token used in the previous step (`trace_stats` measures exactly this). Each of
  a token's previous k experts is kept independently with probability P; the other slots
  are filled from the experts the token did NOT use last step (so chance re-picks cannot
  inflate locality), weighted π/(1 - π) to undo that exclusion and keep loads Zipf.

Locality holds exactly (in expectation) and the Zipf loads up to sampling noise while every
π_e ≤ 1/(2 - P): an expert a token uses more often must repeat more than P allows. Beyond it (large k·p(1), e.g. k = 8 of 64
experts at zipf:1) locality wins and the head of the load curve flattens, so the fitted
exponent comes out below A. π is also capped at 1 (an expert serves a token at most once
per step), and with E < 2k consecutive steps must share 2k - E experts, flooring locality.
"""

from __future__ import annotations

import math

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.traces import (TRACE_FORMAT, TRACE_VERSION, RoutingTrace, _is_int, spread_tokens,
                                          uniform_moe_shape, validate_trace)


def parse_skew(skew: str) -> float:
    """`uniform` → 0.0, `zipf:A` → A (A ≥ 0, finite)."""
    text = skew.strip().lower()
    if text == "uniform":
        return 0.0
    if text.startswith("zipf:"):
        try:
            a = float(text[5:])
        except ValueError:
            a = math.nan
        if math.isfinite(a) and a >= 0:
            return a
    raise FsedpError(f"expected 'uniform' or 'zipf:A' with A ≥ 0, got {skew!r}", field="--skew")


def zipf_inclusion(num_experts: int, k: int, exponent: float) -> np.ndarray:
    """Per-rank probability that a token picks the expert: k·p(r), capped at 1 (water-filled)."""
    # Floored so that a huge A (underflow) still leaves k experts to choose from.
    p = np.maximum(np.arange(1, num_experts + 1, dtype=np.float64) ** -exponent, 1e-300)
    return _waterfill(p[None, :], np.array([k]))[0]


def _waterfill(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Rows scaled to sum m[row] with no entry above 1 (capped entries fixed at 1)."""
    capped = np.zeros(w.shape, dtype=bool)
    q = np.zeros_like(w)
    for _ in range(w.shape[1]):
        free = np.where(capped, 0.0, w)
        total = free.sum(axis=1)
        budget = m - capped.sum(axis=1)
        scale = np.divide(budget, total, out=np.zeros_like(total), where=total > 0)
        q = np.where(capped, 1.0, free * scale[:, None])
        over = q > 1.0
        if not over.any():
            break
        capped |= over
    return q


def _systematic(q: np.ndarray, m: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Per row, m[row] distinct column ids with inclusion probabilities q (Madow sampling
    over a random order); returns [rows, k], entries past m[row] meaningless."""
    rows, cols = q.shape
    order = np.argsort(rng.random((rows, cols)), axis=1)
    cum = np.cumsum(np.take_along_axis(q, order, axis=1), axis=1)
    last = cum[:, -1:]
    cum = np.divide(cum * m[:, None], last, out=np.zeros_like(cum), where=last > 0)
    pts = rng.random(rows)[:, None] + np.arange(k)[None, :]
    # One flat searchsorted for all rows: shift each row into its own disjoint value band.
    off = np.arange(rows, dtype=np.float64)[:, None] * (k + 2)
    flat = np.searchsorted((cum + off).ravel(), (pts + off).ravel(), side="right")
    idx = np.clip(flat.reshape(rows, k) - np.arange(rows)[:, None] * cols, 0, cols - 1)
    return np.take_along_axis(order, idx, axis=1)


def _next_step(
    prev: np.ndarray, pi: np.ndarray, locality: float, rng: np.random.Generator
) -> np.ndarray:
    """One decode step: keep each previous expert with probability `locality`, fill the
    other slots from experts the token did not use last step (see module docstring)."""
    tokens, k = prev.shape
    n_exp = pi.shape[0]
    keep = rng.random((tokens, k)) < locality
    m = k - keep.sum(axis=1)
    used = np.zeros((tokens, n_exp), dtype=bool)
    np.put_along_axis(used, prev, True, axis=1)
    w = np.broadcast_to(pi / np.maximum(1.0 - pi, 1e-9), (tokens, n_exp))
    w = np.where(used, 0.0, w)
    if n_exp - k < k:  # too few unused experts: dropped ones may come back (locality floor)
        kept = np.zeros_like(used)
        r, c = np.nonzero(keep)
        kept[r, prev[r, c]] = True
        short = (m > n_exp - k)[:, None]
        # all unused experts first (weight so large they cap at 1), the rest from dropped ones
        w = np.where(short, np.where(kept, 0.0, np.where(used, pi[None, :], 1e200)), w)
    fresh = _systematic(_waterfill(w, m), m, k, rng)
    slot = np.cumsum(~keep, axis=1) - 1  # rank of each non-kept slot among the fresh picks
    return np.where(keep, prev, np.take_along_axis(fresh, np.maximum(slot, 0), axis=1))


def _draw_step(prev: np.ndarray | None, pi: np.ndarray, k: int, tokens: int, locality: float,
               rng: np.random.Generator) -> np.ndarray:
    """One step's [tokens, k] choices: Zipf inclusion at step 0, `_next_step` after."""
    n_exp = pi.shape[0]

    def draw(rows: np.ndarray) -> np.ndarray:
        if prev is None:
            q = np.broadcast_to(pi, (rows.size, n_exp))
            return _systematic(q, np.full(rows.size, k), k, rng)
        return _next_step(prev[rows], pi, locality, rng)

    rows = np.arange(tokens)
    choice = draw(rows)
    for _ in range(100):  # float round-off could in principle pick one expert twice: redraw those
        srt = np.sort(choice, axis=1)
        dup = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if not dup.size:
            return choice
        choice[dup] = draw(rows[dup])
    raise RuntimeError("synth_trace: could not draw distinct experts (internal error)")


def synth_trace(
    model: ModelSpec,
    tokens: int,
    steps: int,
    chiplets: int,
    skew: str = "uniform",
    locality: float = 0.0,
    seed: int = 0,
) -> RoutingTrace:
    """A seeded synthetic decode trace with Zipf expert popularity and temporal locality."""
    for name, value in (("--tokens", tokens), ("--steps", steps), ("--chiplets", chiplets)):
        if not _is_int(value) or value < 1:
            raise FsedpError(f"must be an integer ≥ 1, got {value!r}", field=name)
    if not (isinstance(locality, (int, float)) and 0.0 <= locality <= 1.0):
        raise FsedpError(f"must be a probability in [0, 1], got {locality!r}", field="--locality")
    if not _is_int(seed) or seed < 0:
        raise FsedpError(f"must be an integer ≥ 0, got {seed!r}", field="--seed")
    exponent = parse_skew(skew)
    n_exp, k = uniform_moe_shape(model)
    pi_rank = zipf_inclusion(n_exp, k, exponent)
    n_layers = len(model.moe)
    experts = np.empty((n_layers, steps, tokens, k), dtype=np.int32)
    weights = np.empty((n_layers, steps, tokens, k), dtype=np.float32)
    for pos, layer in enumerate(model.moe):
        rng = np.random.default_rng(np.random.SeedSequence([seed, layer.index]))
        pi = np.empty(n_exp)
        pi[rng.permutation(n_exp)] = pi_rank  # expert perm[r] has rank r
        for s in range(steps):
            prev = experts[pos, s - 1] if s else None
            choice = _draw_step(prev, pi, k, tokens, float(locality), rng)
            experts[pos, s] = choice
            logits = rng.standard_normal((tokens, k))
            gate = np.exp(logits - logits.max(axis=1, keepdims=True))
            gate = (gate / gate.sum(axis=1, keepdims=True)).astype(np.float32)
            weights[pos, s] = gate / gate.sum(axis=1, keepdims=True, dtype=np.float32)
    meta = {
        "format": TRACE_FORMAT, "version": TRACE_VERSION, "model": model.name,
        "layers": [m.index for m in model.moe], "num_experts": n_exp, "top_k": k,
        "chiplets": chiplets, "tokens": tokens, "steps": steps,
        "source": "synth", "skew": skew.strip().lower(), "skew_exponent": exponent,
        "locality": float(locality), "seed": seed,
    }
    trace = RoutingTrace(experts, weights, spread_tokens(tokens, chiplets), meta)
    validate_trace(trace, model)
    return trace
