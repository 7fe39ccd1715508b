"""A spec's grids expanded into points: one (model, target, routing, tokens, strategy, ...) each.

A point is self-contained (the model spec, the target as TOML text, an imported trace's bytes),
so a worker on another machine reads no file of ours. Its key is a content hash of everything
that decides its row, the fsedpc source included; its group key leaves out the strategy (the
points compared with each other). Inputs are read and checked here, before any work, and every
error names the spec field that brought the bad value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.target import Target, target_to_json
from fsedp_compiler.inputs.target_files import PRESET_PACKAGE, parse_target_toml, preset_names
from fsedp_compiler.sweep.spec import Grid, RoutingSpec, SweepSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Point:
    """One compile + simulate run and what its row records."""

    key: str
    group: str
    params: dict[str, Any]
    model: ModelSpec
    target_toml: str
    strategy: str
    tokens: int
    steps: int
    skew: str = "uniform"
    locality: float = 0.0
    seed: int = 0
    trace: bytes | None = None
    buffers: int = 0
    shards_per_chiplet: int = 0
    functional: bool = False
    hydra_skip_single: bool = False
    work: float = 1.0
    """Its expected seconds on one core of the reference machine (`expected_seconds`)."""


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of fsedpc's own source (every .py and preset .toml, the sweep package aside): a point run
    by other code is another point. Workers report theirs, so a mixed cluster shows up."""
    from importlib.util import find_spec

    from fsedp_compiler import __version__

    roots: dict[str, Path] = {}
    for name in ("fsedp_compiler", "fsedp_compiler.dialects", "fsedp_compiler.passes", "fsedp_compiler.backends",
                 "fsedp_compiler.presets"):
        found = find_spec(name)
        for loc in (found.submodule_search_locations or []) if found else []:
            roots[str(Path(loc).resolve())] = Path(loc).resolve()
    sweep_dir = Path(__file__).resolve().parent
    files: dict[str, Path] = {}
    for root in roots.values():
        for f in root.rglob("*"):
            if f.suffix in (".py", ".toml") and "__pycache__" not in f.parts and sweep_dir not in f.parents \
                    and f.name != "sweep.py":
                files[str(f.resolve())] = f
    h = hashlib.sha256(__version__.encode())
    for path in sorted(files, key=lambda p: (files[p].name, p)):
        h.update(files[path].name.encode() + b"\0" + files[path].read_bytes() + b"\0")
    return h.hexdigest()[:16]


def digest(data: Any) -> str:
    """A short sha256 of canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def model_json(model: ModelSpec) -> dict[str, Any]:
    data = dataclasses.asdict(model)
    data.pop("extra", None)
    data.pop("source", None)
    return data


# --- inputs, read once each ------------------------------------------------------------------------


class Inputs:
    """Models, targets and traces of one spec, each read and checked once, errors at the spec field."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self._models: dict[str, ModelSpec] = {}
        self._target_docs: dict[str, tuple[str, dict[str, Any]]] = {}
        self._targets: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Target, str]] = {}
        self._traces: dict[str, tuple[bytes, Any]] = {}

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.spec.base / p

    def model(self, value: str, loc: tuple[str | int, ...]) -> ModelSpec:
        if value not in self._models:
            p = self.path(value)
            if not p.is_file():
                raise self.spec.error(loc, f"model file not found: {p}")
            if p.suffix == ".json":
                from fsedp_compiler.inputs.hf_import import import_hf_config

                self._models[value] = import_hf_config(str(p))
            else:
                from fsedp_compiler.ir.modules import load_model_spec

                self._models[value] = load_model_spec(str(p))
        return self._models[value]

    def target_doc(self, value: str, loc: tuple[str | int, ...]) -> tuple[str, dict[str, Any]]:
        """(TOML text, parsed document) of a preset name or a target file."""
        if value not in self._target_docs:
            if value.endswith(".toml") or "/" in value:
                p = self.path(value)
                if not p.is_file():
                    raise self.spec.error(loc, f"target file not found: {p}")
                text, where = p.read_text(encoding="utf-8"), str(p)
            else:
                entry = resources.files(PRESET_PACKAGE) / f"{value}.toml"
                if not entry.is_file():
                    raise self.spec.error(loc, f"unknown target preset '{value}'; known presets: "
                                          f"{', '.join(preset_names())} (or give a .toml path)")
                text, where = entry.read_text(encoding="utf-8"), f"{value}.toml"
            parse_target_toml(text, where)  # the unmodified target must be valid on its own
            self._target_docs[value] = (text, tomllib.loads(text))
        return self._target_docs[value]

    def target(self, value: str, loc: tuple[str | int, ...], sets: dict[str, Any],
               set_locs: dict[str, tuple[str | int, ...]]) -> tuple[Target, str]:
        """The target with the `sets` overrides applied, and its TOML text."""
        cache_key = (value, tuple(sorted((k, json.dumps(v)) for k, v in sets.items())))
        if cache_key not in self._targets:
            text, doc = self.target_doc(value, loc)
            if sets:
                import tomli_w

                doc = json.loads(json.dumps(doc))  # a deep copy
                for key, v in sets.items():
                    _set_path(doc, key, v)
                base = doc.get("name", Path(value).stem)
                doc["name"] = f"{base}[" + ",".join(f"{k}={_short(v)}" for k, v in sets.items()) + "]"
                text = tomli_w.dumps(doc)
            try:
                target = parse_target_toml(text, value)
            except FsedpError as err:
                where = set_locs.get(err.field or "", loc)
                raise self.spec.error(where, f"{value} with {_describe(sets)}: {err.field + ': ' if err.field else ''}"
                                      f"{err.message}") from None
            self._targets[cache_key] = (target, text)
        return self._targets[cache_key]

    def trace(self, value: str, model: ModelSpec, loc: tuple[str | int, ...]) -> tuple[bytes, Any]:
        """(file bytes, loaded trace) of an imported trace, checked against the model."""
        from fsedp_compiler.inputs.traces import load_trace

        if value not in self._traces:
            p = self.path(value)
            if not p.is_file():
                raise self.spec.error(loc, f"trace file not found: {p}")
            self._traces[value] = (p.read_bytes(), load_trace(str(p)))
        data, trace = self._traces[value]
        from fsedp_compiler.inputs.traces import validate_trace

        try:
            validate_trace(trace, model, str(self.path(value)))
        except FsedpError as err:
            raise self.spec.error(loc, f"{value}: {err.field + ': ' if err.field else ''}{err.message} "
                                  "(check moe_layers)") from None
        return data, trace


def _set_path(doc: dict[str, Any], key: str, value: Any) -> None:
    node = doc
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise FsedpError(f"{part} is not a table", field=key)
    node[last] = value


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":")).strip('"')


def _describe(sets: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in sets.items())


# --- expansion -------------------------------------------------------------------------------------


def expand(spec: SweepSpec) -> list[Point]:
    """Every point of every grid, in spec order, each once (grids may overlap)."""
    inputs = Inputs(spec)
    seen: dict[str, Point] = {}
    for grid in spec.grids:
        for point in _grid_points(spec, grid, inputs):
            seen.setdefault(point.key, point)
    return list(seen.values())


def _grid_points(spec: SweepSpec, grid: Grid, inputs: Inputs) -> Iterator[Point]:
    from fsedp_compiler.bench.runner import restrict_model

    code = code_fingerprint()
    ax = grid.axes
    set_keys = list(grid.sets)
    set_locs = {k: grid.origin[f"set.{k}"] for k in set_keys}
    for mi, model_file in enumerate(ax["model"]):
        full = inputs.model(model_file, grid.loc("model", mi))
        for moe_layers, dtype, dense in itertools.product(ax["moe_layers"], ax["dtype"], ax["dense"]):
            try:
                model = restrict_model(full, moe_layers, dense, dtype)
            except FsedpError as err:
                raise spec.error(grid.loc("moe_layers"), f"{model_file}: {err.message}") from None
            for ti, target_name in enumerate(ax["target"]):
                for combo in itertools.product(*(grid.sets[k] for k in set_keys)):
                    sets = dict(zip(set_keys, combo))
                    target, toml_text = inputs.target(target_name, grid.loc("target", ti), sets, set_locs)
                    tparams = _target_params(target, sets)
                    for ri, routing in enumerate(ax["routing"]):
                        yield from _routing_points(spec, grid, inputs, model, model_file, target, toml_text,
                                                   tparams, routing, grid.loc("routing", ri), code)


def _target_params(target: Target, sets: dict[str, Any]) -> dict[str, Any]:
    """What a row records about its target: the overridden fields as given, and the headline figures."""
    c = target.chiplet
    dram = c.dram_gbps_per_channel * c.dram_channels
    out: dict[str, Any] = {"target": target.name, "chiplets": target.num_chiplets, "topology": target.topology,
                           "dram_chiplets": len(target.dram_at), "link.gbps": target.link.gbps,
                           "chiplet.dram_gbps_per_channel": c.dram_gbps_per_channel,
                           "chiplet.sram_mib": c.sram_mib, "link_dram_ratio": round(target.link.gbps / dram, 6)}
    out.update(sets)
    return out


def _routing_points(spec: SweepSpec, grid: Grid, inputs: Inputs, model: ModelSpec, model_file: str, target: Target,
                    toml_text: str, tparams: dict[str, Any], routing: RoutingSpec, rloc: tuple[str | int, ...],
                    code: str) -> Iterator[Point]:
    ax = grid.axes
    base_params = {"sweep": spec.name, "grid": grid.name, "model": model.name, "model_file": model_file,
                   **tparams, "routing": routing.label}
    model_data, target_data = model_json(model), target_to_json(target)
    target_data.pop("description", None)
    if routing.trace is not None:
        data, trace = inputs.trace(routing.trace, model, (*rloc, "trace"))
        if trace.num_chiplets != target.num_chiplets:
            raise spec.error((*rloc, "trace"), f"the trace spreads tokens over {trace.num_chiplets} chiplets but "
                             f"{target.name} has {target.num_chiplets}")
        variants = [(None, trace.num_steps, trace.num_tokens)]
        routing_data: dict[str, Any] = {"trace_sha256": hashlib.sha256(data).hexdigest()}
        rparams = {"skew": None, "locality": None, "trace": Path(routing.trace).name}
    else:
        data = None
        variants = [(seed, steps, tokens) for seed in ax["seed"] for steps in ax["steps"] for tokens in ax["tokens"]]
        routing_data = {"skew": routing.skew, "locality": routing.locality}
        rparams = {"skew": routing.skew, "locality": routing.locality, "trace": None}
    for seed, steps, tokens in variants:
        for buffers, shards in itertools.product(ax["buffers"], ax["shards_per_chiplet"]):
            inputs_data = {
                "model": model_data, "target": target_data, "routing": {**routing_data, "seed": seed},
                "tokens": tokens, "steps": steps, "buffers": buffers, "shards_per_chiplet": shards,
                "functional": ax["functional"][0], "hydra_skip_single": ax["hydra_skip_single"][0], "code": code,
            }
            group = digest(inputs_data)
            for strategy in ax["strategies"]:
                params = {**base_params, **rparams, "seed": seed, "tokens": tokens, "steps": steps,
                          "strategy": strategy, "buffers": buffers, "shards_per_chiplet": shards,
                          "dtype": model.moe[0].dtype, "moe_layers": [m.index for m in model.moe],
                          "dense": bool(model.dense), "functional": ax["functional"][0],
                          "hydra_skip_single": ax["hydra_skip_single"][0]}
                yield Point(key=digest({**inputs_data, "strategy": strategy}), group=group, params=params,
                            model=model, target_toml=toml_text, strategy=strategy, tokens=tokens, steps=steps,
                            skew=routing.skew, locality=routing.locality, seed=seed or 0, trace=data,
                            buffers=buffers, shards_per_chiplet=shards, functional=ax["functional"][0],
                            hydra_skip_single=ax["hydra_skip_single"][0] and strategy == "hydra",
                            work=expected_seconds(model, target.num_chiplets, tokens, steps, strategy))


#: The cost model of a point, fitted (least squares on log seconds, scaled so that the total matches)
#: to the 972 points of `make results` on one core of a 2-core cloud VM, 2026: relative cost per
#: strategy (`dp` = 1; FSE-DP's ablations cost what it does), a scale and a fixed overhead. Most
#: points land within a factor of 2; the total is what the estimate needs.
_STRATEGY_COST = {"dp": 1.0, "fsdp": 2.89, "tp": 0.68, "ep": 0.31, "ep-cache": 0.36, "ep-serial": 0.86,
                  "hydra": 0.98, "fsedp": 0.22,
                  "auto": 2.5}  # not fitted: it estimates every candidate, measured ~2.3 dp on one point
_SCALE, _OVERHEAD = 1.0e-7, 0.05


def expected_seconds(model: ModelSpec, chiplets: int, tokens: int, steps: int, strategy: str) -> float:
    """Seconds one point should take on the reference machine: a fixed overhead (building the module,
    the passes, emitting) plus a power law in the experts touched, chiplets, expert bytes and tokens,
    linear in steps x MoE layers, times the strategy's cost."""
    m = model.moe[0]
    active = min(m.num_experts, tokens * m.top_k)
    factor = _STRATEGY_COST.get(strategy, _STRATEGY_COST["fsedp"] if strategy.startswith("fsedp") else 1.0)
    return _OVERHEAD + (_SCALE * steps * len(model.moe) / 2 * active ** 0.61 * chiplets ** 1.27
                        * m.expert_bytes ** 0.61 * tokens ** 0.33 * factor)


def estimate_seconds(points: list[Point], measured: list[tuple[float, float]] | None = None) -> float:
    """Core-seconds the points should take: their expected seconds, scaled by how this machine did on
    the store's finished rows when there are some (`(expected, measured)` pairs, the median ratio)."""
    scale = 1.0
    if measured:
        ratios = sorted(s / max(w, 1e-9) for w, s in measured)
        scale = ratios[len(ratios) // 2]
    return sum(p.work for p in points) * scale


def human_duration(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `2 h 10 min`."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
