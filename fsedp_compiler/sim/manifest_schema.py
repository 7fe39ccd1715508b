"""The pydantic form of program.json's schema (`manifest.py`): the reference the fast check
(`manifest.fast_parse`) follows, and the judge of whatever that check refuses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fsedp_compiler.sim.manifest import (_FILE, _SHA, BASELINE_NAMES, DTYPE_NAMES, MAX_CHIPLETS, MAX_DIM, MAX_EXPERTS,
                                         MAX_LAYERS, MAX_SHARDS, MAX_STEPS, MAX_TOKENS, STRATEGY_NAMES)

Sha = Annotated[str, StringConstraints(pattern=_SHA)]
FileName = Annotated[str, StringConstraints(pattern=_FILE.pattern)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, le=1e12)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False, le=1e12)]
Chiplet = Annotated[int, Field(ge=0, lt=MAX_CHIPLETS)]
DTYPES = Literal[DTYPE_NAMES]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PerDtype(_Strict):
    bf16: NonNegFloat
    fp16: NonNegFloat
    int8: NonNegFloat
    fp8: NonNegFloat


class PositivePerDtype(_Strict):
    """Compute rates: a dtype at 0 TOPS would never finish (and divide by zero)."""

    bf16: PosFloat
    fp16: PosFloat
    int8: PosFloat
    fp8: PosFloat


class ChipletModel(_Strict):
    tops: PositivePerDtype
    sram_mib: PosFloat
    dram_channels: Annotated[int, Field(ge=1, le=64)]
    dram_gbps_per_channel: PosFloat
    dram_latency_ns: NonNegFloat
    dram_pj_per_bit: NonNegFloat
    sram_pj_per_bit: NonNegFloat
    pj_per_mac: PerDtype


class LinkModel(_Strict):
    gbps: PosFloat
    latency_ns: NonNegFloat
    pj_per_bit: NonNegFloat


class CostKnobs(_Strict):
    min_tokens: Annotated[int, Field(ge=1, le=1 << 20)] = 1
    op_overhead_ns: Annotated[int, Field(ge=0, le=10**9)] = 0
    scheduler_ns_per_expert: Annotated[int, Field(ge=0, le=10**9)] = 2


class TargetModel(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    chiplets: Annotated[int, Field(ge=2, le=MAX_CHIPLETS)]
    topology: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    links: Annotated[list[tuple[Chiplet, Chiplet]], Field(min_length=1, max_length=MAX_CHIPLETS * 16)]
    dram_at: Annotated[list[Chiplet], Field(min_length=1, max_length=MAX_CHIPLETS)]
    ring: Annotated[list[Chiplet], Field(min_length=2, max_length=MAX_CHIPLETS)]
    rings: Annotated[list[Annotated[list[Chiplet], Field(min_length=2, max_length=MAX_CHIPLETS)]],
                     Field(min_length=1, max_length=8)] | None = None
    """every virtual ring (the first is `ring`); absent: `ring` alone"""
    chiplet: ChipletModel
    link: LinkModel
    cost: CostKnobs | None = None
    """the cost model's knobs (the target's [cost] table); absent: the defaults"""


STRATEGIES = Literal[STRATEGY_NAMES]


class LayerModel(_Strict):
    index: Annotated[int, Field(ge=0, le=MAX_LAYERS)]
    d_model: Annotated[int, Field(ge=1, le=MAX_DIM)]
    d_ffn: Annotated[int, Field(ge=1, le=MAX_DIM)]
    num_experts: Annotated[int, Field(ge=1, le=MAX_EXPERTS)]
    top_k: Annotated[int, Field(ge=1, le=MAX_EXPERTS)]
    num_shared: Annotated[int, Field(ge=0, le=64)]
    d_ffn_shared: Annotated[int, Field(ge=0, le=MAX_DIM)]
    activation: Literal["swiglu", "gelu"]
    dtype: DTYPES
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS)]
    buffers: Annotated[int, Field(ge=2, le=1 << 16)]
    shard_bytes: Annotated[int, Field(ge=1)]
    shared_shard_bytes: Annotated[int, Field(ge=0)]
    channels: list[tuple[Chiplet, Annotated[int, Field(ge=0, le=63)]]]
    strategy: STRATEGIES | None = None
    """The layer's strategy (`auto` programs name it per layer; others need not)."""
    baseline: Literal[BASELINE_NAMES] | None = None
    hydra_skip_single: bool = False
    order: Literal["paired", "work", "id"] | None = None
    direction: Literal["per-shard", "balanced", "cw"] | None = None
    trajectory: Literal["nearest", "fullring", "single-entry"] | None = None
    rings: Literal["all", "one"] | None = None


class DenseModel(_Strict):
    index: Annotated[int, Field(ge=0, le=MAX_LAYERS)]
    flops_per_token: Annotated[int, Field(ge=0, le=1 << 50)]
    weight_bytes: Annotated[int, Field(ge=0, le=1 << 50)]
    kind: Annotated[str, StringConstraints(max_length=100)] = "attention"


class ProgramEntry(_Strict):
    chiplet: Chiplet
    fsa: FileName | None = None
    """the program's text form; absent when compiled without it (`fsedpc compile --text`)"""
    bin: FileName
    instructions: Annotated[int, Field(ge=0, le=1 << 32)]
    fsa_sha256: Sha | None = None
    bin_sha256: Sha


class Manifest(_Strict):
    format: Literal["fsedpc-program"]
    version: Literal[2]
    model: Annotated[str, StringConstraints(max_length=200)]
    num_layers: Annotated[int, Field(ge=1, le=MAX_LAYERS)]
    strategy: Literal[STRATEGIES, "auto"]
    edited: bool
    mode: Literal["static", "dynamic"]
    target: TargetModel
    layers: Annotated[list[LayerModel], Field(max_length=MAX_LAYERS)]
    dense: Annotated[list[DenseModel], Field(max_length=MAX_LAYERS)]
    programs: Annotated[list[ProgramEntry], Field(min_length=2, max_length=MAX_CHIPLETS)]
    files: dict[FileName, Sha]
    trace: FileName | None = None
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = None
    tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    manifest_sha256: Sha
    """SHA-256 of the canonical JSON of every other field (`fsedp_compiler/digest.py`), checked by the loader."""


