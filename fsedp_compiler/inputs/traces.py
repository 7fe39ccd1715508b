"""Routing traces: which experts every decode token chose, per MoE layer and step.

A trace is an `.npz` with `experts[int32, layers, steps, tokens, k]`, `weights[float32,
same]`, `token_chiplet[int32, tokens]` and `meta` (a JSON string in a 0-d unicode array).
Token t of step s continues token t of step s-1 and lives on chiplet `token_chiplet[t]`.

Synthetic traces (`synth_trace`) have two knobs, both measured back by `trace_stats`:

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

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import write_output
from fsedp_compiler.files.jsonio import load_json
from fsedp_compiler.inputs.model import ModelSpec

TRACE_FORMAT = "fsedpc-trace"
TRACE_VERSION = 1
ARRAYS: tuple[str, ...] = ("experts", "weights", "token_chiplet", "meta")
_META_INTS: tuple[str, ...] = ("num_experts", "top_k", "chiplets", "tokens", "steps")
#: Limits of a trace (the machine's: program.json's MAX_* in sim/manifest.py), checked before any work.
META_LIMITS: dict[str, int] = {"num_experts": 65534, "top_k": 65534, "chiplets": 4096, "tokens": 1 << 20,
                               "steps": 65535}
MAX_LAYER_INDEX = 65535
MAX_TRACE_ELEMENTS = 1 << 27
"""Elements per array (experts: layers x steps x tokens x k), checked in the npy header before reading."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class RoutingTrace:
    """Per-layer, per-step expert choices of a decode batch, plus where each token lives."""

    experts: np.ndarray
    """int32 [layers, steps, tokens, k]: chosen expert ids."""
    weights: np.ndarray
    """float32 [layers, steps, tokens, k]: gate weight of each choice."""
    token_chiplet: np.ndarray
    """int32 [tokens]: the chiplet holding each token (sequence) for the whole trace."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.experts.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.experts.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.experts.shape[2])

    @property
    def top_k(self) -> int:
        return int(self.experts.shape[3])

    @property
    def num_chiplets(self) -> int:
        return int(self.meta["chiplets"])

    @property
    def num_experts(self) -> int:
        return int(self.meta["num_experts"])

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """The model's MoE layer index of each trace layer, in order."""
        return tuple(int(i) for i in self.meta["layers"])

    def step(self, layer_pos: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(experts[T, k], weights[T, k]) of trace layer `layer_pos` at decode step `step`."""
        return self.experts[layer_pos, step], self.weights[layer_pos, step]

    def tokens_on(self, chiplet: int) -> np.ndarray:
        """Indices of the tokens that live on `chiplet`."""
        return np.flatnonzero(self.token_chiplet == chiplet)


def spread_tokens(tokens: int, chiplets: int) -> np.ndarray:
    """Contiguous, as-even-as-possible blocks: token t goes to chiplet t*N//T."""
    return (np.arange(tokens, dtype=np.int64) * chiplets // tokens).astype(np.int32)


# --------------------------------------------------------------------------- file I/O


def save_trace(trace: RoutingTrace, path: str) -> None:
    """Write `trace` as an output (atomically; `-`: stdout); the same trace always gives the same bytes."""
    write_output(path, trace_bytes(trace))


def trace_bytes(trace: RoutingTrace) -> bytes:
    """The `.npz` bytes of `trace` (deterministic)."""
    meta = np.array(json.dumps(trace.meta, sort_keys=True))
    arrays = {
        "experts": np.ascontiguousarray(trace.experts, dtype=np.int32),
        "weights": np.ascontiguousarray(trace.weights, dtype=np.float32),
        "token_chiplet": np.ascontiguousarray(trace.token_chiplet, dtype=np.int32),
        "meta": meta,
    }
    buf = io.BytesIO()
    # np.savez stamps the wall clock into each entry; fixed ZipInfo fields keep bytes stable.
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ARRAYS:
            entry = io.BytesIO()
            npformat.write_array(entry, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED  # no zlib: identical bytes on every build
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, entry.getvalue())
    return buf.getvalue()


def load_trace(path: str, model: ModelSpec | None = None) -> RoutingTrace:
    """Read and fully validate a trace (against `model` too when given)."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for name in ARRAYS:
                if f"{name}.npy" not in names:
                    raise FsedpError("array missing from the trace", path=path, field=name)
                try:
                    _check_header(zf, f"{name}.npy", path, name)
                    with zf.open(f"{name}.npy") as handle:
                        arrays[name] = npformat.read_array(handle, allow_pickle=False)
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as err:
                    msg = f"unreadable array ({err})"
                    raise FsedpError(msg, path=path, field=name) from None
    except FileNotFoundError:
        raise FsedpError("trace file not found", path=path) from None
    except IsADirectoryError:
        raise FsedpError("expected a trace file, got a directory", path=path) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile):
        raise FsedpError("not a trace: the file is not an .npz (zip) archive", path=path) from None
    except OSError as err:
        raise FsedpError(f"cannot read trace: {err.strerror or err}", path=path) from None
    meta = _parse_meta(arrays["meta"], path)
    trace = RoutingTrace(arrays["experts"], arrays["weights"], arrays["token_chiplet"], meta)
    validate_trace(trace, model, path)
    return trace


def _parse_meta(arr: np.ndarray, path: str | None) -> dict[str, Any]:
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise FsedpError(
            f"expected a 0-d unicode array holding JSON, got {arr.dtype} with shape {arr.shape}",
            path=path, field="meta",
        )
    meta = load_json(str(arr[()]), path, field="meta")
    if not isinstance(meta, dict):
        raise FsedpError("must be a JSON object", path=path, field="meta")
    return meta


# --------------------------------------------------------------------------- validation


def _check_header(zf: zipfile.ZipFile, member: str, path: str, name: str) -> None:
    """Refuse an array before reading it when its npy header claims more than the file holds or
    more than MAX_TRACE_ELEMENTS elements (a flipped bit must not allocate terabytes)."""
    info = zf.getinfo(member)
    with zf.open(info) as handle:
        version = npformat.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version} is not supported")
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        header_bytes = handle.tell()
    if dtype.hasobject:
        raise FsedpError("object arrays are not allowed in a trace", path=path, field=name)
    count = math.prod(shape)
    if count > MAX_TRACE_ELEMENTS:
        raise FsedpError(f"header claims shape {shape} ({count} elements), more than the limit of "
                         f"{MAX_TRACE_ELEMENTS} elements per array", path=path, field=name)
    if count * dtype.itemsize > info.file_size - header_bytes:
        raise FsedpError(f"header claims shape {shape} of {dtype} ({count * dtype.itemsize} bytes) but the "
                         f"array holds {info.file_size - header_bytes} bytes (truncated?)", path=path, field=name)


def _fail(path: str | None, fld: str, message: str) -> FsedpError:
    return FsedpError(message, path=path, field=fld)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_meta(meta: dict[str, Any], path: str | None) -> None:
    for key in ("format", "version", "model", "layers", *_META_INTS, "source"):
        if key not in meta:
            raise _fail(path, f"meta.{key}", "missing")
    if meta["format"] != TRACE_FORMAT:
        raise _fail(path, "meta.format", f"expected {TRACE_FORMAT!r}, got {meta['format']!r}")
    if not _is_int(meta["version"]) or meta["version"] != TRACE_VERSION:
        raise _fail(path, "meta.version", f"unsupported version {meta['version']!r} (expected 1)")
    for key in _META_INTS:
        if not _is_int(meta[key]) or meta[key] < 1:
            raise _fail(path, f"meta.{key}", f"expected a positive integer, got {meta[key]!r}")
        if meta[key] > META_LIMITS[key]:
            raise _fail(path, f"meta.{key}", f"{meta[key]} exceeds the limit of {META_LIMITS[key]}")
    layers = meta["layers"]
    if not isinstance(layers, list) or not all(_is_int(i) and 0 <= i <= MAX_LAYER_INDEX for i in layers):
        raise _fail(path, "meta.layers", f"expected a list of layer indices 0..{MAX_LAYER_INDEX}")
    if any(b <= a for a, b in zip(layers, layers[1:])):
        raise _fail(path, "meta.layers", f"layer indices must be strictly increasing: {layers}")
    for key in ("model", "source"):
        if not isinstance(meta[key], str) or not meta[key]:
            raise _fail(path, f"meta.{key}", "expected a non-empty string")


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def validate_trace(
    trace: RoutingTrace, model: ModelSpec | None = None, path: str | None = None
) -> None:
    """Raise `FsedpError` naming the array/field for anything a trace must not contain."""
    meta = trace.meta
    _validate_meta(meta, path)
    ex, w, tc = trace.experts, trace.weights, trace.token_chiplet
    if ex.dtype != np.int32:
        raise _fail(path, "experts", f"expected dtype int32, got {ex.dtype}")
    if ex.ndim != 4:
        raise _fail(path, "experts",
                    f"expected 4 dims [layers, steps, tokens, k], got shape {ex.shape}")
    if w.dtype != np.float32:
        raise _fail(path, "weights", f"expected dtype float32, got {w.dtype}")
    if w.shape != ex.shape:
        raise _fail(path, "weights", f"shape {w.shape} differs from experts shape {ex.shape}")
    if tc.dtype != np.int32:
        raise _fail(path, "token_chiplet", f"expected dtype int32, got {tc.dtype}")
    if tc.ndim != 1 or tc.shape[0] != ex.shape[2]:
        raise _fail(path, "token_chiplet",
                    f"shape {tc.shape} must be ({ex.shape[2]},), one chiplet per token")
    n_layers, n_steps, n_tokens, k = ex.shape
    for key, got in (("layers", n_layers), ("steps", n_steps), ("tokens", n_tokens), ("top_k", k)):
        want = len(meta["layers"]) if key == "layers" else meta[key]
        if want != got:
            raise _fail(path, f"meta.{key}",
                        f"says {want} but experts has {got} (shape {ex.shape})")
    n_exp = meta["num_experts"]
    if k > n_exp:
        raise _fail(path, "meta.top_k", f"k = {k} exceeds num_experts = {n_exp}")
    bad = (ex < 0) | (ex >= n_exp)
    if bad.any():
        at = _first(bad)
        raise _fail(path, "experts", f"id {int(ex[at])} at [layer {at[0]}, step {at[1]}, "
                    f"token {at[2]}] outside [0, {n_exp})")
    srt = np.sort(ex, axis=-1)
    dup = (srt[..., 1:] == srt[..., :-1]).any(axis=-1)
    if dup.any():
        at = _first(dup)
        raise _fail(path, "experts", f"token {at[2]} lists expert {_dup_id(srt[at])} twice "
                    f"at [layer {at[0]}, step {at[1]}]")
    if not np.isfinite(w).all():
        at = _first(~np.isfinite(w))
        raise _fail(path, "weights", f"gate weight {w[at]} at {list(at)} is not finite")
    if (w < 0).any():
        at = _first(w < 0)
        raise _fail(path, "weights", f"gate weight {w[at]} at {list(at)} is negative")
    bad = (tc < 0) | (tc >= meta["chiplets"])
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise _fail(path, "token_chiplet", f"token {t} on chiplet {int(tc[t])}, outside "
                    f"[0, {meta['chiplets']})")
    if model is not None:
        _check_against_model(trace, model, path)


def _dup_id(row: np.ndarray) -> int:
    return int(row[1:][row[1:] == row[:-1]][0])


def _check_against_model(trace: RoutingTrace, model: ModelSpec, path: str | None) -> None:
    want = [m.index for m in model.moe]
    if list(trace.layer_indices) != want:
        raise _fail(path, "meta.layers", f"trace layers {list(trace.layer_indices)} do not match "
                    f"model {model.name!r} MoE layers {want}")
    for layer in model.moe:
        if layer.top_k != trace.top_k:
            raise _fail(path, "top_k", f"trace has k = {trace.top_k} but model layer {layer.index} "
                        f"has top_k = {layer.top_k}")
        if layer.num_experts != trace.num_experts:
            raise _fail(path, "meta.num_experts", f"trace has {trace.num_experts} experts but "
                        f"model layer {layer.index} has {layer.num_experts}")


def uniform_moe_shape(model: ModelSpec, what: str = "model") -> tuple[int, int]:
    """(num_experts, top_k) shared by all MoE layers of `model`; traces need one of each."""
    if not model.moe:
        raise FsedpError(f"{what} {model.name!r} has no MoE layers", field="model")
    shapes = {(m.num_experts, m.top_k) for m in model.moe}
    if len(shapes) != 1:
        raise FsedpError(f"{what} {model.name!r} MoE layers differ in (num_experts, top_k): "
                         f"{sorted(shapes)}; a trace needs one shape", field="model")
    return shapes.pop()


# --------------------------------------------------------------------------- synthesis


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


# --------------------------------------------------------------------------- statistics


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
