"""Every strategy fsedpc compiles, by name: FSE-DP, its ablations and the baselines.

One home for the names (the CLI, bench, the cross-check and the lowerings read them here, without
importing the planners).
"""

from __future__ import annotations

#: FSE-DP and its ablations: (order, direction, trajectory, rings) of the scheduler's policy.
FSEDP: dict[str, tuple[str, str, str, str]] = {
    "fsedp": ("paired", "per-shard", "nearest", "all"),
    "fsedp-fullring": ("paired", "per-shard", "fullring", "all"),  # every shard visits every chiplet (authors' code)
    "fsedp-nocomp": ("paired", "per-shard", "single-entry", "all"),  # an expert's shards all enter at one chiplet
    "fsedp-fixeddir": ("paired", "cw", "nearest", "one"),  # no direction balancing
    "fsedp-perexpert": ("paired", "balanced", "nearest", "one"),  # one direction per expert (round 1), none per shard
    "fsedp-onering": ("paired", "per-shard", "nearest", "one"),  # R1's ring only, however many the target has
    "fsedp-unpaired": ("work", "per-shard", "nearest", "all"),  # no heavy/light pairing: heaviest first
}

#: The baselines (lowerings in fsedp_compiler/baselines), with what each does.
BASELINES: dict[str, str] = {
    "ep": "strong expert parallel: whole experts on DRAM-chiplet owners, tokens to owners, overlapped tiles",
    "ep-serial": "the paper's EP: one whole expert resident per chiplet, no load/compute overlap",
    "hydra": "the paper's Hydra: EP on the chiplet holding most tokens, heavy/light paired",
    "ep-cache": "ep with an LRU cache of whole experts in each owner's free SRAM",
    "tp": "tensor parallel: 1/N of every expert per chiplet, one token all-gather and one reduce-scatter per step",
    "tp-per-expert": "tp with the token all-gather and partial reduce-scatter once per active expert",
    "dp": "replicated data parallel: each needing chiplet reads the whole expert itself",
    "fsdp": "FSDP-style: each tile read once, multicast to needing chiplets, whole expert gathered",
}

INEXACT = "hydra with --hydra-skip-single never computes experts routed a single token (authors' code)"

ALL: tuple[str, ...] = (*FSEDP, *BASELINES)
"""FSE-DP and its ablations, then the baselines."""

#: The strong baselines (README "The baselines"): FSE-DP's fair competitors. `ep-serial` and
#: `hydra` model the FSE-DP authors' own baselines and are not among them.
STRONG: tuple[str, ...] = ("ep", "ep-cache", "tp", "tp-per-expert", "dp", "fsdp")

AUTO = "auto"
"""Not a plan but a choice: per MoE layer, the fastest plan that fits SRAM by the compiler's
estimator (`fsedp_compiler/pipeline/auto.py`)."""

NAMES: tuple[str, ...] = (*ALL, AUTO)
"""Every name `--strategy` and `--strategies` accept."""
