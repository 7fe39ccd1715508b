"""One layer step for the cross-check: the routing's streams on a plan, the virtual rings and a cost
model, and the heuristic's schedule of it (what every CP-SAT model starts from)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, StepSchedule, Stream, schedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import StepTimeline, Trip, execute, trajectories


@dataclass
class Instance:
    """One layer step: the routing's streams (S_e, local tokens) on a plan, rings and cost model.

    `ring` is R1's ring; `rings` the target's virtual rings, R1's first (R1 generalised: further
    edge-disjoint Hamiltonian cycles, `inputs/rings.py`), empty for R1's alone. The scheduler
    spreads streams over them as its policy allows (`Policy.rings`), and every model here puts a
    stream's shards on the ring the stream table assigns it (`Stream.ring`)."""

    plan: ShardPlan
    ring: Ring
    cost: CostModel
    routing: StepRouting
    policy: Policy = field(default_factory=Policy)
    rings: tuple[Ring, ...] = ()

    @property
    def virtual_rings(self) -> list[Ring]:
        """The rings the scheduler may use: the target's (R1's first), or R1's alone under the
        policy `rings one` or when no further ring is given."""
        if not self.rings or self.policy.rings == "one":
            return [self.ring]
        return list(self.rings)

    def ring_of(self, stream: Stream) -> Ring:
        """The virtual ring a stream's shards walk (the stream table's)."""
        return self.virtual_rings[stream.ring]

    def heuristic(self) -> tuple[StepSchedule, list[Trip], StepTimeline, float]:
        start = time.perf_counter()
        sched = schedule(self.routing, self.plan, self.virtual_rings, self.cost, self.policy)
        elapsed = time.perf_counter() - start
        return (sched, *self.run(sched), elapsed)

    def run(self, sched: StepSchedule) -> tuple[list[Trip], StepTimeline]:
        """`sched`'s trips and the estimator's timeline of them (R4's admission rules)."""
        trips = trajectories(sched, self.plan, self.virtual_rings)
        return trips, execute(trips, self.plan, self.ring, self.cost, {s.expert: s.tokens for s in sched.streams})
