"""One layer step for the cross-check: the routing's streams on a plan, ring and cost model, and
the heuristic's schedule of it (what every CP-SAT model starts from)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy, StepRouting, StepSchedule, schedule
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.fsedp.streaming import StepTimeline, Trip, execute, trajectories


@dataclass
class Instance:
    """One layer step: the routing's streams (S_e, local tokens) on a plan, ring and cost model."""

    plan: ShardPlan
    ring: Ring
    cost: CostModel
    routing: StepRouting
    policy: Policy = field(default_factory=Policy)

    def heuristic(self) -> tuple[StepSchedule, list[Trip], StepTimeline, float]:
        start = time.perf_counter()
        sched = schedule(self.routing, self.plan, self.ring, self.cost, self.policy)
        elapsed = time.perf_counter() - start
        return (sched, *self.run(sched), elapsed)

    def run(self, sched: StepSchedule) -> tuple[list[Trip], StepTimeline]:
        """`sched`'s trips and the estimator's timeline of them (R4's admission rules)."""
        trips = trajectories(sched, self.plan, self.ring)
        return trips, execute(trips, self.plan, self.ring, self.cost, {s.expert: s.tokens for s in sched.streams})
