"""`--strategy auto`: per MoE layer, the fastest plan that fits SRAM by the compiler's estimator.

Every candidate strategy (FSE-DP, its ablations and the baselines; in dynamic mode FSE-DP and
its ablations, the only strategies with routing-independent programs) is timed per MoE layer on
the routing with the compiler's own estimator (`estimate.py`: the scheduler's plan or the
baseline's task graphs, executed with the cost model), without lowering it. Layers are separated
by barriers, so a program's time is the sum of its layers' and each layer can be chosen alone:
the fastest candidate whose peak SRAM fits the chiplet wins (ties: the earlier candidate in
`strategies.ALL` order, FSE-DP first). The chosen strategies are then compiled as usual and
their layers spliced into one program (`automerge.py`).

Executing every candidate's plan is what makes auto slow on big models, so it first takes a
cheap lower bound on each candidate's time (`bounds.py`: no plan executed, no task graph built)
and estimates the candidates in the order of their bounds; once two fitting candidates are
estimated, a candidate whose bound is above the second of them (ties: candidate order) can be
neither the choice nor the runner-up, fit or not, and is left unestimated (`Pruned`), as is one
whose bound on its peak SRAM is above the capacity. It also skips work whose result it already
has: FSE-DP's ablations that make the very same trips in a step (executed once), and ep-cache
where its caches can hold no expert (its plan is ep's). The choice, the runner-up, their
estimates and so the program are exactly those of estimating every candidate;
FSEDPC_AUTO_PRUNE=0 does that (for the whole table of what fits SRAM, as before).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import Policy
from fsedp_compiler.fsedp.streaming import trajectories
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import layer_contexts
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.pipeline.compare import binding, binding_text
from fsedp_compiler.pipeline.bounds import (baseline_layer_bound, baseline_peak_bound, ep_cache_never_caches,
                                            fsedp_channel_bound, fsedp_step_bound)
from fsedp_compiler.pipeline.estimate import LayerEstimate, baseline_layer, fsedp_layer, fsedp_schedules
from fsedp_compiler.strategies import ALL, AUTO, BASELINES, FSEDP

#: The synthetic routing a dynamic program's choice is estimated on when no trace is given.
SYNTH_TOKENS, SYNTH_STEPS, SYNTH_SEED = 16, 4, 0


@dataclass(frozen=True)
class Candidate:
    """One strategy's plan of one layer: its estimate and whether it fits the chiplet's SRAM."""

    strategy: str
    estimate: LayerEstimate
    fits: bool

    @property
    def total_ns(self) -> int:
        return self.estimate.total_ns

    @property
    def step_ns(self) -> float:
        """Mean estimated step time (ns)."""
        return self.total_ns / max(len(self.estimate.steps_ns), 1)

    @property
    def binds(self) -> str:
        return binding(self.estimate.busy_fraction())

    @property
    def binds_text(self) -> str:
        return binding_text(self.estimate.busy_fraction())


@dataclass(frozen=True)
class Pruned:
    """A candidate auto did not estimate (`bounds.py`): its lower bound on the layer's time (ns)
    was above the runner-up's estimate, so it was neither chosen nor runner-up (its SRAM fit is
    not known); or, when `over_sram_bytes` is set, a lower bound on its peak SRAM is above the
    capacity (it cannot fit: its time was not bounded, `bound_ns` is 0)."""

    strategy: str
    bound_ns: int
    steps: int
    over_sram_bytes: int = 0

    @property
    def step_ns(self) -> float:
        """The bound on the mean step time (ns)."""
        return self.bound_ns / max(self.steps, 1)


@dataclass(frozen=True)
class LayerChoice:
    """The estimated candidates of one MoE layer (in candidate order), the chosen one, the
    runner-up, and the candidates left unestimated for their bounds (`pruned`: those that cannot
    fit SRAM, then those slower than the runner-up in bound order)."""

    layer: int
    candidates: tuple[Candidate, ...]
    chosen: Candidate
    runner_up: Candidate | None
    pruned: tuple[Pruned, ...] = ()

    @property
    def considered(self) -> int:
        """Every candidate of the layer, estimated or not."""
        return len(self.candidates) + len(self.pruned)

    @property
    def slower(self) -> list[Pruned]:
        """The candidates left out for their time bounds (above the runner-up's estimate)."""
        return [p for p in self.pruned if not p.over_sram_bytes]

    @property
    def cannot_fit(self) -> list[Pruned]:
        """The candidates left out because a bound on their peak SRAM is above the capacity."""
        return [p for p in self.pruned if p.over_sram_bytes]

    @property
    def over_sram(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.fits]

    @property
    def ties(self) -> list[str]:
        """Other estimated candidates exactly as fast as the chosen one (it won by coming first); a
        pruned one can tie only if it also ties the runner-up and comes after it."""
        return [c.strategy for c in self.candidates if c.fits and c is not self.chosen
                and c.total_ns == self.chosen.total_ns]


def choose(candidates: Sequence[Candidate]) -> tuple[Candidate, Candidate | None]:
    """The fastest candidate that fits SRAM and the next fastest that fits (ties: the earlier in
    `candidates`); an error when none fits."""
    ranked = sorted((c for c in candidates if c.fits), key=lambda c: c.total_ns)  # stable: ties keep order
    if not ranked:
        raise FsedpError("no candidate plan fits the chiplet's SRAM: "
                         + ", ".join(f"{c.strategy} peaks at {max(c.estimate.peak_bytes) / 2**20:.2f} MiB"
                                     for c in candidates), field="--strategy")
    return ranked[0], (ranked[1] if len(ranked) > 1 else None)


def default_candidates(mode: str) -> tuple[str, ...]:
    """Static: every strategy (FSE-DP, its ablations, the baselines); dynamic: FSE-DP and its ablations."""
    return ALL if mode == "static" else tuple(FSEDP)


def parse_candidates(text: str | None, mode: str) -> tuple[str, ...]:
    """`--candidates a,b,c` (default: `default_candidates(mode)`), checked against the mode."""
    if not text:
        return default_candidates(mode)
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in names if s not in ALL]
    if bad or not names:
        what = f"'{bad[0]}'" if bad else "(none)"
        hint = " (auto chooses among them)" if AUTO in bad else ""
        raise FsedpError(f"unknown candidate {what}{hint}; known: {', '.join(ALL)}", field="--candidates")
    if mode != "static" and (static_only := [s for s in names if s in BASELINES]):
        raise FsedpError(f"{static_only[0]} compiles static programs only: give --trace for a static program, "
                         f"or leave the baselines out of --candidates", field="--candidates")
    return tuple(s for s in ALL if s in names)  # candidate order decides ties: always ALL's


def prune_default() -> bool:
    """Whether auto leaves out candidates by their bounds when not told (FSEDPC_AUTO_PRUNE=0: no)."""
    return os.environ.get("FSEDPC_AUTO_PRUNE", "") not in ("0", "no", "false")


def evaluate(module: ModuleOp, trace: RoutingTrace, candidates: Sequence[str], mode: str,
             prune: bool | None = None) -> list[LayerChoice]:
    """Per MoE layer of a sharded module (after shard-experts), the candidates' estimates on
    `trace`, and the choice. Dynamic mode adds the controller's latency to FSE-DP's steps.
    `prune` (default: `prune_default()`): leave out the candidates that cannot be chosen nor be
    the runner-up by their lower bounds (module docstring); else estimate every one."""
    target = require_target(module, "auto")
    contexts = layer_contexts(module)
    positions = {index: pos for pos, index in enumerate(trace.layer_indices)}
    capacity = target.chiplet.sram_bytes
    rings = [Ring(r) for r in target.rings]  # R1's first; a policy with rings "one" keeps to it
    prune = prune_default() if prune is None else prune
    out = []
    for ctx in contexts:
        index = ctx.spec.index
        if index not in positions:
            raise FsedpError(f"the trace has no routing for MoE layer {index}", field="--trace")
        pos, plan = positions[index], ctx.plan
        cost = CostModel(target, ctx.spec.dtype)
        controller = mode == "dynamic"

        # with pruning, also the exact shortcuts: FSE-DP's executed steps by their trips, the
        # baselines' estimates by strategy, and ep-cache as ep when its caches can hold nothing
        steps_memo: dict | None = {} if prune else None
        baselines: dict[str, LayerEstimate] = {}
        never_caches = prune and ep_cache_never_caches(ctx.spec, plan, target, trace, pos, len(contexts))

        def estimate(strategy: str, made: tuple | None = None) -> LayerEstimate:
            if strategy not in FSEDP:
                # ep-cache's caches can hold no expert in any step: its graphs are ep's, task for task
                same = "ep" if strategy == "ep-cache" and never_caches else strategy
                if same not in baselines or not prune:
                    baselines[same] = baseline_layer(same, ctx.spec, plan, target, trace, pos,
                                                     moe_layers=len(contexts))
                return baselines[same]
            policy = Policy(*FSEDP[strategy])
            scheds, trips = made or (fsedp_schedules(ctx.spec, plan, rings, cost, policy, trace, pos), None)
            return fsedp_layer(scheds, plan, rings, cost, policy.trajectory, controller=controller, trips=trips,
                               memo=steps_memo)

        if not prune:
            cands = [Candidate(s, est, est.fits(capacity)) for s in candidates for est in (estimate(s),)]
            pruned: list[Pruned] = []
        else:
            made: dict = {}
            cands, pruned = _pruned_estimates(candidates, estimate, lambda s: _bound(
                s, ctx, plan, rings, cost, trace, pos, target, controller, never_caches, made), capacity,
                trace.num_steps, lambda s: baseline_peak_bound(s, plan, target, trace, pos),
                lambda s, b: _refine(s, b, plan, rings, cost, controller))
        try:
            chosen, runner_up = choose(cands)
        except FsedpError as err:
            err.message = f"MoE layer {index}: {err.message}"
            raise
        out.append(LayerChoice(index, tuple(cands), chosen, runner_up, tuple(pruned)))
    return out


def _bound(strategy: str, ctx, plan, rings: list[Ring], cost: CostModel, trace: RoutingTrace, pos: int,
           target, controller: bool, never_caches: bool = False,
           made: dict | None = None) -> tuple[int, tuple | None]:
    """A candidate's lower bound on the layer's time (`bounds.py`) and, for FSE-DP's family, the
    schedules and trips made for it (its estimate runs those same trips). `never_caches`: ep-cache
    is ep on this layer (`bounds.ep_cache_never_caches`); `made`: FSE-DP's bounds by policy, shared
    by the calls of one layer (on a target with one ring, `rings` "one" and "all" are one policy:
    fsedp-onering is fsedp)."""
    if strategy not in FSEDP:
        same = "ep" if strategy == "ep-cache" and never_caches else strategy
        return baseline_layer_bound(same, ctx.spec, plan, target, trace, pos), None
    policy = Policy(*FSEDP[strategy])
    if len(rings) == 1:
        policy = replace(policy, rings="all")
    if made is not None and policy in made:
        return made[policy]
    scheds = fsedp_schedules(ctx.spec, plan, rings, cost, policy, trace, pos)
    out = sum(fsedp_channel_bound(s, plan, rings, policy.trajectory, cost, controller) for s in scheds), (scheds, None)
    if made is not None:
        made[policy] = out
    return out


def _refine(strategy: str, bound: tuple[int, tuple | None], plan, rings: list[Ring], cost: CostModel,
            controller: bool) -> tuple[int, tuple | None]:
    """An FSE-DP candidate's full bound (`bounds.fsedp_step_bound`, at least its channel bound),
    with the trips it makes, which its estimate then runs; a baseline's bound as it is."""
    if strategy not in FSEDP or bound[1] is None or bound[1][1] is not None:
        return bound
    scheds = bound[1][0]
    trips = [trajectories(s, plan, rings, Policy(*FSEDP[strategy]).trajectory) for s in scheds]
    return sum(fsedp_step_bound(s, t, cost, controller) for s, t in zip(scheds, trips)), (scheds, trips)


def _pruned_estimates(candidates: Sequence[str], estimate: Callable[[str, tuple | None], LayerEstimate],
                      bound: Callable[[str], tuple[int, tuple | None]], capacity: int, steps: int,
                      peak: Callable[[str], int] = lambda s: 0,
                      refine: Callable[[str, tuple], tuple[int, tuple | None]] = lambda s, b: b,
                      ) -> tuple[list[Candidate], list[Pruned]]:
    """The estimated candidates (in candidate order) and the pruned ones. First, a candidate whose
    lower bound on its peak SRAM (`peak`) is above `capacity` cannot fit: it is left out, unless
    no other fits (then every one is estimated, for the error's list of peaks). The others are
    estimated in the order of (time bound, candidate order), but once two fitting ones are known a
    candidate whose (bound, order) is above the second of theirs (total, order) is pruned; one
    that its first (cheap) bound does not prune is `refine`d (a tighter bound, making what its
    estimate needs) and checked again. Exact: a pruned candidate's (total, order) is above that
    second's, which can only fall as more are estimated, so `choose` gives the same two."""
    rank = {s: i for i, s in enumerate(candidates)}
    over = {s: p for s in candidates if (p := peak(s)) > capacity}
    rest = [s for s in candidates if s not in over]
    # two candidates are both estimated whatever their bounds: then none is made
    bounds = {s: bound(s) if len(rest) > 2 else (0, None) for s in rest}
    order = sorted(rest, key=lambda s: (bounds[s][0], rank[s]))
    done: dict[str, Candidate] = {}
    fitting: list[tuple[int, int]] = []  # (total, order) of the two best fitting so far
    pruned: list[Pruned] = []
    for s in order:
        for tighter in (False, True):
            if tighter and len(rest) > 2:
                bounds[s] = refine(s, bounds[s])
            if len(fitting) == 2 and (bounds[s][0], rank[s]) > fitting[1]:
                pruned.append(Pruned(s, bounds[s][0], steps))
                break
        else:  # not pruned by either bound
            est = estimate(s, bounds[s][1])
            cand = done[s] = Candidate(s, est, est.fits(capacity))
            if cand.fits:
                fitting = sorted([*fitting, (cand.total_ns, rank[s])])[:2]
    if not fitting:  # none fits: `choose` lists every candidate's peak
        done.update((s, Candidate(s, est, est.fits(capacity))) for s in over for est in (estimate(s, None),))
        over = {}
    pruned[:0] = [Pruned(s, 0, steps, p) for s, p in over.items()]
    return [done[s] for s in candidates if s in done], pruned


def lower_picks(ctx: Context, module: ModuleOp, picks: dict[int, str],
                passes_of: Callable[[str], list[ModulePass]]) -> ModuleOp:
    """Compile each picked strategy (MoE layer -> strategy) from the sharded `module` (a clone
    each; `passes_of` gives a strategy's passes after shard-experts) and splice the layers
    together: one strategy's module as it is, several as `automerge.splice` joins them."""
    from fsedp_compiler.pipeline.automerge import splice
    from fsedp_compiler.pipeline.driver import run_passes

    built: dict[str, ModuleOp] = {}
    for strategy in dict.fromkeys(picks.values()):
        clone = module.clone()
        run_passes(ctx, clone, passes_of(strategy), verify_each=False, verify_at_end=False)
        built[strategy] = clone
    if len(built) == 1:
        return next(iter(built.values()))
    return splice(built, picks)


def chosen_text(choices: Sequence[LayerChoice]) -> str:
    """The choice in one word when every layer made the same (`tp`), else per layer (`1:tp 3:fsedp`)."""
    picks = [c.chosen.strategy for c in choices]
    if len(set(picks)) == 1:
        return picks[0]
    return " ".join(f"{c.layer}:{c.chosen.strategy}" for c in choices)
