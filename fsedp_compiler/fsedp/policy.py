"""The scheduling policy's knobs by name: one home for the vocabulary the dialect verifies, the
passes take as options and the scheduler acts on (so the dialect need not import the scheduler)."""

from __future__ import annotations

#: R6's global stream order: heavy/light `paired` (FSE-DP), by `work`, or by expert `id`.
ORDERS = ("paired", "work", "id")
#: per-shard: each expert clockwise, counter-clockwise or SHORT (every shard the shorter way from its
#: home), whichever keeps the busiest link lowest; balanced: per expert only (round 1); cw: one way
DIRECTIONS = ("per-shard", "balanced", "cw")
#: How a shard's trajectory is chosen. `nearest` is FSE-DP (R2: enter S_e at the first member
#: reached from the DRAM home, visit each member once, stop at the last); the others are the
#: ablations of `fsedpc compile --strategy`: `fullring` (every shard walks the whole ring, as in
#: the FSE-DP authors' simulator) and `single-entry` (all of an expert's shards enter S_e at one
#: member, the first after ring position 0: no complementary streams).
TRAJECTORIES = ("nearest", "fullring", "single-entry")
#: Which virtual rings streams spread over: every edge-disjoint ring of the target, or R1's alone.
RINGS = ("all", "one")
