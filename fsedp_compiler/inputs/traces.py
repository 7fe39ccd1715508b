"""Routing traces: which experts every decode token chose, per MoE layer and step.

A trace is an `.npz` with `experts[int32, layers, steps, tokens, k]`, `weights[float32,
same]`, `token_chiplet[int32, tokens]` and `meta` (a JSON string in a 0-d unicode array).
Token t of step s continues token t of step s-1 and lives on chiplet `token_chiplet[t]`.

Synthetic traces come from `trace_synth.py`, their statistics from `trace_stats.py`.
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
