"""`--strategy auto`'s lower bounds (`pipeline/bounds.py`) and the pruning they allow: every bound
is at or below the estimator's time on random small cases (every strategy, targets with and
without DRAM on every chiplet, shared experts, several rings), and pruning never changes the
choice, the runner-up or any estimate auto reports."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.ir.layers import layer_contexts
from fsedp_compiler.ir.modules import make_context, parse_module, require_target, spec_from_module
from fsedp_compiler.pipeline.auto import _bound, _refine, evaluate
from fsedp_compiler.pipeline.bounds import baseline_peak_bound, ep_cache_never_caches
from fsedp_compiler.pipeline.compile import plan_passes
from fsedp_compiler.pipeline.driver import run_passes
from fsedp_compiler.pipeline.estimate import baseline_layer, fsedp_layer, fsedp_schedules
from fsedp_compiler.fsedp.scheduler import Policy
from fsedp_compiler.strategies import ALL, FSEDP

REPO = Path(__file__).resolve().parent.parent
#: paper-4x4 has DRAM on its corners only (slices and tiles travel), torus-4x4 two virtual rings
TARGETS = ["paper-2x2", "paper-4x4", "ring-8", "torus-4x4", "hbm-8"]


def model_text(experts: int, top_k: int, shared: int, layers: int = 1, d_ffn: int = 256) -> str:
    """A small model: `layers` MoE layers of `experts` experts (16 chiplets divide d_ffn 256 and 512)."""
    rows = "\n".join(f"  moe.layer {i} experts {experts} top_k {top_k} d_model 64 d_ffn {d_ffn}"
                     + (f" shared {shared} x {d_ffn}" if shared else "") + " swiglu bf16" for i in range(layers))
    return (f'builtin.module attributes {{moe.model = "rand", moe.num_layers = {layers} : i64}} {{\n'
            f"{rows}\n}}\n")


def sharded(text: str, target: str, sram_mib: float | None = None, tmp: Path | None = None):
    """The model sharded for `target` (optionally a copy of it with `sram_mib` of SRAM)."""
    if sram_mib is not None:
        assert tmp is not None
        lines = (REPO / "examples" / "targets" / f"{target}.toml").read_text().splitlines()
        lines = [f"sram_mib = {sram_mib}" if s.startswith("sram_mib") else s for s in lines]
        path = tmp / f"{target}-{sram_mib}.toml"
        path.write_text("\n".join(lines) + "\n")
        target = str(path)
    ctx = make_context()
    module = parse_module(text, "rand.mlir", ctx)
    run_passes(ctx, module, plan_passes(target=target), verify_each=False, verify_at_end=False)
    return module


CASES = dict(target=st.sampled_from(TARGETS), experts=st.integers(2, 9), top_k=st.integers(1, 3),
             shared=st.sampled_from([0, 0, 1, 2]), tokens=st.integers(1, 24), steps=st.integers(1, 3),
             skew=st.sampled_from(["uniform", "zipf:1.5"]), locality=st.sampled_from([0.0, 0.6]),
             seed=st.integers(0, 10_000))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES, controller=st.booleans())
def test_every_bound_is_at_most_the_estimate(target: str, experts: int, top_k: int, shared: int, tokens: int,
                                             steps: int, skew: str, locality: float, seed: int,
                                             controller: bool) -> None:
    """For every strategy, its bound on the layer's time is <= the estimator's time of it (what
    pruning by the bound relies on), and not trivially zero when the layer has work."""
    top_k = min(top_k, experts)
    text = model_text(experts, top_k, shared)
    module = sharded(text, target)
    system = require_target(module, "test")
    trace = synth_trace(spec_from_module(parse_module(text, "rand.mlir", make_context())), tokens, steps,
                        system.num_chiplets, skew, locality, seed)
    (ctx,) = layer_contexts(module)
    rings = [Ring(r) for r in system.rings]
    cost = CostModel(system, ctx.spec.dtype)
    for strategy in ALL:
        bound, made = _bound(strategy, ctx, ctx.plan, rings, cost, trace, 0, system, controller)
        full, made = _refine(strategy, (bound, made), ctx.plan, rings, cost, controller)
        assert full >= bound  # the full bound includes the cheap one (FSE-DP's channels)
        bound = full
        if strategy in FSEDP:
            policy = Policy(*FSEDP[strategy])
            scheds = fsedp_schedules(ctx.spec, ctx.plan, rings, cost, policy, trace, 0)
            est = fsedp_layer(scheds, ctx.plan, rings, cost, policy.trajectory, controller=controller)
            assert made is not None
            assert fsedp_layer(*made[:1], ctx.plan, rings, cost, policy.trajectory, controller=controller,
                               trips=made[1]) == est  # the trips the bound made give the same estimate
        else:
            est = baseline_layer(strategy, ctx.spec, ctx.plan, system, trace, 0)
        assert 0 < bound <= est.total_ns, (strategy, bound, est.total_ns)
        assert baseline_peak_bound(strategy, ctx.plan, system, trace, 0) <= max(est.peak_bytes), strategy


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES, sram=st.sampled_from([None, 0.1, 0.3]), mode=st.sampled_from(["static", "static", "dynamic"]),
       layers=st.integers(1, 2), d_ffn=st.sampled_from([256, 512]))
def test_pruning_keeps_the_choice_and_every_reported_estimate(tmp_path_factory, target: str, experts: int,
                                                             top_k: int, shared: int, tokens: int, steps: int,
                                                             skew: str, locality: float, seed: int,
                                                             sram: float | None, mode: str, layers: int,
                                                             d_ffn: int) -> None:
    """Auto with pruning and without: the same choice and runner-up per layer, the same estimate of
    every candidate it estimated; each pruned candidate's bound is at most its estimate and above
    the runner-up's (total, candidate order), or it is over SRAM by at least its peak bound (a
    whole expert of d_ffn 512 is 0.19 MiB), and every candidate is either estimated or pruned."""
    top_k = min(top_k, experts)
    text = model_text(experts, top_k, shared, layers, d_ffn)
    try:
        module = sharded(text, target, sram, tmp_path_factory.mktemp("t") if sram else None)
    except Exception as err:  # too little SRAM for any shard plan: nothing to choose
        assert "SRAM too small" in str(err)
        return
    system = require_target(module, "test")
    trace = synth_trace(spec_from_module(parse_module(text, "rand.mlir", make_context())), tokens, steps,
                        system.num_chiplets, skew, locality, seed)
    names = ALL if mode == "static" else tuple(FSEDP)
    try:
        full = evaluate(module, trace, names, mode, prune=False)
    except Exception as err:  # no candidate fits: pruning never starts (it needs two that fit)
        assert "no candidate plan fits" in str(err)
        return
    pruned = evaluate(module, trace, names, mode, prune=True)
    for a, b in zip(full, pruned, strict=True):
        assert (a.layer, a.chosen, a.runner_up) == (b.layer, b.chosen, b.runner_up)
        every = {c.strategy: c for c in a.candidates}
        assert all(every[c.strategy] == c for c in b.candidates)
        assert sorted([c.strategy for c in b.candidates] + [p.strategy for p in b.pruned]) == sorted(names)
        assert b.considered == len(names) and [c.strategy for c in b.candidates] == \
            [s for s in names if s in {c.strategy for c in b.candidates}]
        rank = {s: i for i, s in enumerate(names)}
        for p in b.cannot_fit:  # left out as over SRAM: they are, by at least that much
            assert not every[p.strategy].fits and p.over_sram_bytes <= max(every[p.strategy].estimate.peak_bytes)
        for p in b.slower:
            assert p.bound_ns <= every[p.strategy].total_ns
            assert b.runner_up is not None
            assert (p.bound_ns, rank[p.strategy]) > (b.runner_up.total_ns, rank[b.runner_up.strategy])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(["paper-2x2", "paper-4x4", "ring-8"]), experts=st.integers(2, 9),
       shared=st.sampled_from([0, 1]), tokens=st.integers(1, 24), steps=st.integers(1, 3),
       sram=st.sampled_from([0.1, 0.2, 0.3, 0.5]), layers=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_ep_cache_that_never_caches_is_ep(tmp_path_factory, target: str, experts: int, shared: int, tokens: int,
                                          steps: int, sram: float, layers: int, seed: int) -> None:
    """When `ep_cache_never_caches` says so, ep-cache's estimate (time, peaks, busy) is ep's; and
    an ep-cache estimate that differs from ep's always comes with it saying no."""
    text = model_text(experts, 2, shared, layers)
    try:
        module = sharded(text, target, sram, tmp_path_factory.mktemp("t"))
    except Exception as err:
        assert "SRAM too small" in str(err)
        return
    system = require_target(module, "test")
    trace = synth_trace(spec_from_module(parse_module(text, "rand.mlir", make_context())), tokens, steps,
                        system.num_chiplets, "zipf:1.5", 0.6, seed)
    ctx = layer_contexts(module)[0]
    never = ep_cache_never_caches(ctx.spec, ctx.plan, system, trace, 0, layers)
    ep = baseline_layer("ep", ctx.spec, ctx.plan, system, trace, 0, moe_layers=layers)
    cache = baseline_layer("ep-cache", ctx.spec, ctx.plan, system, trace, 0, moe_layers=layers)
    assert not never or cache == ep


def test_compile_reports_the_candidates_it_did_not_estimate(fsedpc, tmp_path: Path, monkeypatch) -> None:
    """With pruning the table gains a 'not estimated (bound)' column and a note saying what it
    means; the program is the same, byte for byte, as when every candidate is estimated, whose
    table has neither (today's output)."""
    model = REPO / "examples" / "models" / "tiny-moe.mlir"
    trace = tmp_path / "t.npz"
    assert fsedpc("trace", "synth", str(model), "--tokens", "16", "--steps", "2", "--chiplets", "16",
                  "--skew", "zipf:1.0", "--seed", "2", "-o", str(trace)).code == 0
    args = ("compile", str(model), "--target", "mesh-4x4", "--trace", str(trace), "--strategy", "auto")
    pruned = fsedpc(*args, "-o", str(tmp_path / "pruned"))
    assert pruned.code == 0, pruned.err
    monkeypatch.setenv("FSEDPC_AUTO_PRUNE", "0")
    every = fsedpc(*args, "-o", str(tmp_path / "every"))
    assert every.code == 0, every.err
    words = " ".join(pruned.out.split())
    assert "not estimated (bound)" in pruned.out and "(>= " in pruned.out
    assert "not estimated: candidates whose lower bound on the step time" in words
    assert "FSEDPC_AUTO_PRUNE=0 estimates them all" in words
    assert "the fastest of 15 candidates" in words and "the fastest of 15 candidates" in " ".join(every.out.split())
    assert "not estimated" not in every.out
    files = sorted(p.name for p in (tmp_path / "every").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "pruned").iterdir())
    for f in files:
        assert (tmp_path / "every" / f).read_bytes() == (tmp_path / "pruned" / f).read_bytes(), f


def _fake(totals: dict[str, int], peaks: dict[str, int], bounds: dict[str, int], over: dict[str, int],
          capacity: int = 100):
    """`_pruned_estimates` on made-up candidates; returns its result and which were estimated."""
    from fsedp_compiler.pipeline.auto import _pruned_estimates
    from fsedp_compiler.pipeline.estimate import LayerEstimate

    made: list[str] = []

    def estimate(s: str, _made) -> LayerEstimate:
        made.append(s)
        return LayerEstimate([totals[s]], [peaks.get(s, 10)], {})

    names = tuple(totals)
    return _pruned_estimates(names, estimate, lambda s: (bounds[s], None), capacity, 1,
                             lambda s: over.get(s, 0)), made


def test_pruning_order_ties_and_sram_bounds() -> None:
    """Estimated in (bound, candidate order); a bound equal to the runner-up's total is pruned only
    when the candidate comes after it; a candidate over SRAM by its bound is never estimated unless
    nothing else fits (then all are, so that the error can list every peak)."""
    totals = {"a": 50, "b": 40, "c": 40, "d": 45, "e": 41}
    bounds = {"a": 45, "b": 39, "c": 40, "d": 40, "e": 40}
    (cands, pruned), made = _fake(totals, {}, bounds, {})
    # b and c (40 each) are the two best; d and e could at best tie c, after it in candidate order
    assert made == ["b", "c"] and [p.strategy for p in pruned] == ["d", "e", "a"]
    assert [c.strategy for c in cands] == ["b", "c"]
    (cands, pruned), made = _fake(totals, {"b": 900}, bounds, {})  # b over SRAM: it does not count
    assert made == ["b", "c", "d", "e"] and [p.strategy for p in pruned] == ["a"]
    (cands, pruned), made = _fake({"a": 10, "b": 20, "c": 20, "d": 30}, {}, {"a": 10, "b": 20, "c": 20, "d": 20}, {})
    assert made == ["a", "b"] and [p.strategy for p in pruned] == ["c", "d"]  # c at best ties b, after it
    (cands, pruned), made = _fake({"a": 10, "b": 20, "c": 20}, {}, {"a": 10, "b": 20, "c": 19}, {})
    assert made == ["a", "c", "b"] and not pruned  # c first (bound 19); then b (20, 1) < (20, 2): estimated
    (cands, pruned), made = _fake({"a": 10, "b": 20, "c": 30}, {}, {"a": 10, "b": 20, "c": 30}, {"a": 500})
    assert "a" not in made and pruned[0].strategy == "a" and pruned[0].over_sram_bytes == 500
    (cands, pruned), made = _fake({"a": 10, "b": 20}, {"b": 900}, {"a": 10, "b": 20}, {"a": 500})
    assert sorted(made) == ["a", "b"] and not pruned and [c.strategy for c in cands] == ["a", "b"]
