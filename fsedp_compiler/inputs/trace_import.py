"""Import a routing dump in JSON Lines (one record per MoE layer and token) as a trace.

Each record needs a layer index, a token position, the chosen expert ids and their gate
weights; accepted names are listed in `FIELD_ALIASES`, other fields are ignored.

Token identification. Positions alone do not identify tokens: a prefill logs positions
0…P-1 and later decode steps often log their new token at position 0 again (or a batch logs
several sequences at one position). So tokens are recovered from FILE ORDER:

1. Records for layers the model has no MoE block for are dropped (and counted) first.
2. The file splits into forward passes: a new pass starts wherever a record's layer is
   lower than the previous kept record's layer (layers only ascend inside one pass).
3. Inside a pass, the n-th record of layer L at position p belongs to token (p, n). This
   reads layer-major passes (all tokens of layer 0, then of layer 1, ...) and token-major
   ones (a token's layers back to back: each token then is its own pass) alike, and two
   tokens that share a position -- in different passes, or twice in one pass -- stay two.
4. Tokens are ordered by their first record. A token lacking any MoE layer of the model is
   dropped (counted); consecutive surviving tokens form steps of T tokens, slot t of a step
   living on chiplet t*N//T; an incomplete final step is dropped (counted).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import read_text
from fsedp_compiler.files.jsonio import load_json
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.traces import (
    TRACE_FORMAT,
    TRACE_VERSION,
    RoutingTrace,
    spread_tokens,
    uniform_moe_shape,
    validate_trace,
)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "layer": ("layer", "layer_idx", "layer_id"),
    "token": ("token", "token_idx", "token_pos", "position", "pos"),
    "experts": ("experts", "expert_ids", "topk_ids", "topk_idx"),
    "weights": ("weights", "gating_probs", "topk_weights", "topk_weight"),
}


@dataclass
class ImportReport:
    """What an import kept and what it dropped, and why."""

    records: int = 0
    records_unknown_layer: int = 0
    unknown_layers: list[int] = field(default_factory=list)
    passes: int = 0
    tokens_found: int = 0
    tokens_missing_layers: int = 0
    tokens_incomplete_step: int = 0
    tokens_kept: int = 0
    steps: int = 0

    def dropped(self) -> dict[str, int]:
        """The drop counts, as stored in the trace's `meta.dropped`."""
        return {
            "records_unknown_layer": self.records_unknown_layer,
            "tokens_missing_layers": self.tokens_missing_layers,
            "tokens_incomplete_step": self.tokens_incomplete_step,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(what, count) lines for printing."""
        unknown = ""
        if self.unknown_layers:
            unknown = f" (layers {', '.join(map(str, self.unknown_layers))})"
        return [
            ("records read", str(self.records)),
            ("records dropped: layer not in model", f"{self.records_unknown_layer}{unknown}"),
            ("forward passes", str(self.passes)),
            ("tokens found", str(self.tokens_found)),
            ("tokens dropped: missing MoE layers", str(self.tokens_missing_layers)),
            ("tokens dropped: incomplete final step", str(self.tokens_incomplete_step)),
            ("tokens kept", str(self.tokens_kept)),
            ("steps", str(self.steps)),
        ]


@dataclass
class _Record:
    line: int
    layer: int
    pos: int
    experts: list[int]
    weights: list[float]


def _err(message: str, path: str, line: int, fld: str | None = None) -> FsedpError:
    return FsedpError(message, path=path, line=line, field=fld)


def _get(obj: dict[str, Any], name: str, path: str, line: int) -> Any:
    for alias in FIELD_ALIASES[name]:
        if alias in obj:
            return obj[alias]
    names = " / ".join(FIELD_ALIASES[name])
    raise _err(f"record has no {name} field (expected one of {names})", path, line, name)


def _int(value: Any, name: str, path: str, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _err(f"expected a non-negative integer, got {value!r}", path, line, name)
    return value


def _parse_record(obj: Any, path: str, line: int, n_exp: int, k: int) -> _Record:
    if not isinstance(obj, dict):
        raise FsedpError("each line must be a JSON object", path=path, line=line)
    layer = _int(_get(obj, "layer", path, line), "layer", path, line)
    pos = _int(_get(obj, "token", path, line), "token", path, line)
    experts = _get(obj, "experts", path, line)
    weights = _get(obj, "weights", path, line)
    for name, value in (("experts", experts), ("weights", weights)):
        if not isinstance(value, list):
            raise FsedpError(f"expected a list, got {value!r}", path=path, line=line, field=name)
    ids = [_int(e, "experts", path, line) for e in experts]
    if len(ids) != k:
        raise FsedpError(f"record lists {len(ids)} experts but the model's top_k is {k}",
                         path=path, line=line, field="top_k")
    if len(weights) != len(ids):
        raise _err(f"{len(weights)} weights for {len(ids)} experts", path, line, "weights")
    for e in ids:
        if e >= n_exp:
            raise _err(f"expert id {e} outside [0, {n_exp})", path, line, "experts")
    if len(set(ids)) != len(ids):
        raise FsedpError(f"expert listed twice: {ids}", path=path, line=line, field="experts")
    for wt in weights:
        number = isinstance(wt, (int, float)) and not isinstance(wt, bool)
        if not number or not math.isfinite(wt) or wt < 0:
            raise FsedpError(f"gate weight {wt!r} is not a finite non-negative number",
                             path=path, line=line, field="weights")
    return _Record(line, layer, pos, ids, [float(wt) for wt in weights])


def read_records(path: str, model: ModelSpec) -> tuple[list[_Record], ImportReport]:
    """Parse every line (errors carry path:line:col) and drop layers the model lacks."""
    n_exp, k = uniform_moe_shape(model)
    moe = {m.index for m in model.moe}
    report = ImportReport()
    unknown: set[int] = set()
    records: list[_Record] = []
    for lineno, text in enumerate(read_text(path, "routing dump").splitlines(), start=1):
        if not text.strip():
            continue
        obj = load_json(text, path, line=lineno)
        rec = _parse_record(obj, path, lineno, n_exp, k)
        report.records += 1
        if rec.layer not in moe:
            report.records_unknown_layer += 1
            unknown.add(rec.layer)
            continue
        records.append(rec)
    report.unknown_layers = sorted(unknown)
    return records, report


def group_tokens(records: list[_Record], report: ImportReport) -> list[dict[int, _Record]]:
    """Tokens (layer → record) in file order, by the rule in the module docstring."""
    tokens: list[dict[int, _Record]] = []
    pass_tokens: dict[tuple[int, int], int] = {}  # (position, occurrence) → index in `tokens`
    seen: dict[tuple[int, int], int] = {}  # (layer, position) → records so far in this pass
    prev_layer = -1
    for i, rec in enumerate(records):
        if i == 0 or rec.layer < prev_layer:
            report.passes += 1
            pass_tokens, seen = {}, {}
        prev_layer = rec.layer
        nth = seen.get((rec.layer, rec.pos), 0)
        seen[(rec.layer, rec.pos)] = nth + 1
        key = (rec.pos, nth)
        if key not in pass_tokens:
            pass_tokens[key] = len(tokens)
            tokens.append({})
        tokens[pass_tokens[key]][rec.layer] = rec
    return tokens


def import_routing_jsonl(
    path: str, model: ModelSpec, chiplets: int, tokens_per_step: int
) -> tuple[RoutingTrace, ImportReport]:
    """Read a JSONL routing dump into a validated trace for `model` plus a drop report."""
    for name, value in (("--chiplets", chiplets), ("--tokens-per-step", tokens_per_step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FsedpError(f"must be an integer ≥ 1, got {value!r}", field=name)
    n_exp, k = uniform_moe_shape(model)
    records, report = read_records(path, model)
    tokens = group_tokens(records, report)
    layers = [m.index for m in model.moe]
    report.tokens_found = len(tokens)
    complete = [tok for tok in tokens if len(tok) == len(layers)]
    report.tokens_missing_layers = len(tokens) - len(complete)
    steps = len(complete) // tokens_per_step
    report.steps = steps
    report.tokens_kept = steps * tokens_per_step
    report.tokens_incomplete_step = len(complete) - report.tokens_kept
    if steps == 0:
        raise FsedpError(f"only {len(complete)} complete tokens, fewer than one step of "
                         f"{tokens_per_step} (--tokens-per-step)", path=path)
    kept = complete[: report.tokens_kept]
    ex = np.array([[tok[li].experts for li in layers] for tok in kept], dtype=np.int64)
    wt = np.array([[tok[li].weights for li in layers] for tok in kept], dtype=np.float64)
    # [tokens_kept, layers, k] → [layers, steps, T, k]
    shape = (steps, tokens_per_step, len(layers), k)
    experts = ex.reshape(shape).transpose(2, 0, 1, 3).astype(np.int32)
    weights = wt.reshape(shape).transpose(2, 0, 1, 3).astype(np.float32)
    meta = {
        "format": TRACE_FORMAT, "version": TRACE_VERSION, "model": model.name, "layers": layers,
        "num_experts": n_exp, "top_k": k, "chiplets": chiplets, "tokens": tokens_per_step,
        "steps": steps, "source": "import", "input": os.path.basename(path),
        "dropped": report.dropped(),
    }
    trace = RoutingTrace(np.ascontiguousarray(experts), np.ascontiguousarray(weights),
                         spread_tokens(tokens_per_step, chiplets), meta)
    validate_trace(trace, model, path)
    return trace, report
