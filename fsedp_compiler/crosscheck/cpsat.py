"""Deterministic CP-SAT solves for the cross-check (`crosscheck.py`, `crosscheck_free.py`,
`crosscheck_bounds.py`): one worker and a fixed seed, under a wall-clock or a deterministic
limit, so the same inputs give the same report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

SEED = 1
WORKERS = 1


@dataclass
class CheckResult:
    """A solve: CP-SAT's status, the makespan found (None if none), the best bound (None if
    infeasible), the wall-clock time, and the direction chosen per (stream, shard home)."""

    status: str
    makespan: int | None
    bound: int | None
    solve_s: float
    directions: dict[Any, int] = field(default_factory=dict)


def run_solver(m: cp_model.CpModel, mk: Any, time_limit: float,
               work_limit: float | None = None) -> tuple[cp_model.CpSolver, CheckResult]:
    """Solve with WORKERS and SEED: the status, makespan `mk` when a solution was found, the best
    bound unless infeasible, and the solve time. `time_limit` is wall-clock seconds, so a solve
    it cuts short depends on the machine's speed and load; `work_limit` replaces it with CP-SAT's
    deterministic time, which makes every result reproducible."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = WORKERS
    solver.parameters.random_seed = SEED
    if work_limit is None:
        solver.parameters.max_time_in_seconds = time_limit
    else:
        solver.parameters.max_deterministic_time = work_limit
    began = time.perf_counter()
    status = solver.Solve(m)
    elapsed = time.perf_counter() - began
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    bound = int(solver.BestObjectiveBound()) if status != cp_model.INFEASIBLE else None
    return solver, CheckResult(solver.StatusName(status), int(solver.Value(mk)) if found else None, bound, elapsed)
