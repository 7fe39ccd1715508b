"""The pass pipeline of each strategy, and `--strategy auto`'s per-layer build (used by `compile`,
`bench` and the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fsedp_compiler.strategies import ALL, FSEDP

#: FSE-DP and its ablations: (order, direction, trajectory, rings) (fsedp_compiler/strategies.py).
STRATEGIES = FSEDP


def all_strategies() -> tuple[str, ...]:
    """FSE-DP and its ablations, then the baselines."""
    return ALL


def compile_passes(strategy: str, *, target: str | None, trace: str | None, mode: str, shards_per_chiplet: int = 0,
                   buffers: int = 0, order: str | None = None, direction: str | None = None,
                   hydra_skip_single: bool = False) -> list:
    """The pass pipeline of `strategy` (attach-target first when `target` is given)."""
    return (plan_passes(target=target, shards_per_chiplet=shards_per_chiplet, buffers=buffers, trace=trace)
            + strategy_passes(strategy, trace=trace, mode=mode, order=order, direction=direction,
                              hydra_skip_single=hydra_skip_single))


def plan_passes(*, target: str | None, shards_per_chiplet: int = 0, buffers: int = 0,
                trace: str | None = None) -> list:
    """The passes every strategy shares: attach-target (when `target` is given) and shard-experts
    (shards sized for `trace`'s fewest active experts when given)."""
    from fsedp_compiler.passes.attach_target import AttachTargetPass
    from fsedp_compiler.passes.shard_experts import ShardExpertsPass

    passes: list = [AttachTargetPass(target=target)] if target else []
    return passes + [ShardExpertsPass(shards_per_chiplet=shards_per_chiplet, buffers=buffers, trace=trace or "")]


def strategy_passes(strategy: str, *, trace: str | None, mode: str, order: str | None = None,
                    direction: str | None = None, hydra_skip_single: bool = False) -> list:
    """The passes of `strategy` after shard-experts."""
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.passes.expand_dataflow import ExpandDataflowPass
    from fsedp_compiler.passes.lower_baseline import LowerBaselinePass
    from fsedp_compiler.passes.lower_to_dataflow import LowerToDataflowPass
    from fsedp_compiler.passes.schedule_streams import ScheduleStreamsPass
    from fsedp_compiler.passes.virtualize_streams import VirtualizeStreamsPass

    passes: list = []
    if hydra_skip_single and strategy != "hydra":
        raise FsedpError("--hydra-skip-single only applies to --strategy hydra", field="--hydra-skip-single")
    if strategy not in STRATEGIES:
        if mode != "static" or not trace:
            raise FsedpError(f"the {strategy} baseline compiles static programs: give --trace trace.npz",
                             field="--strategy")
        if order or direction:
            raise FsedpError("--order and --direction are FSE-DP policies", field="--order" if order else "--direction")
        return passes + [LowerBaselinePass(strategy=strategy, trace=trace, hydra_skip_single=hydra_skip_single)]
    s_order, s_direction, trajectory, rings = STRATEGIES[strategy]
    return passes + [
        VirtualizeStreamsPass(order=order or s_order, direction=direction or s_direction, trajectory=trajectory,
                              rings=rings),
        ScheduleStreamsPass(mode=mode, trace=trace or ""),
        LowerToDataflowPass(),
        ExpandDataflowPass(),
    ]


def last_lowering_left(passes: list) -> list | None:
    """`passes` with their last lowering left to emit-isa, which makes a static program a step at
    a time into its `.bin` files: expand-dataflow left out, lower-baseline lowering only the
    layers' ops (`LowerBaselineOpsPass`). None: the pipeline ends in neither."""
    from fsedp_compiler.passes.expand_dataflow import ExpandDataflowPass
    from fsedp_compiler.passes.lower_baseline import LowerBaselineOpsPass, LowerBaselinePass

    last = passes[-1] if passes else None
    if isinstance(last, ExpandDataflowPass):
        return passes[:-1]
    if type(last) is LowerBaselinePass:
        return passes[:-1] + [LowerBaselineOpsPass(strategy=last.strategy, trace=last.trace,
                                                   hydra_skip_single=last.hydra_skip_single)]
    return None


@dataclass
class AutoBuild:
    """`--strategy auto`'s program: the spliced module, each layer's choice, and the routing the
    choice was estimated on (in words)."""

    module: Any
    choices: list = field(default_factory=list)
    routing: str = ""

    @property
    def layer_strategies(self) -> dict[int, str]:
        return {c.layer: c.chosen.strategy for c in self.choices}

    @property
    def chosen(self) -> str:
        """The choice in words: `tp`, or per layer `1:tp 3:fsedp`."""
        from fsedp_compiler.pipeline.auto import chosen_text

        return chosen_text(self.choices)


def compile_auto(ctx, module, *, target: str | None, trace: str | None, mode: str, shards_per_chiplet: int = 0,
                 buffers: int = 0, candidates: str | None = None, verify_each: bool = False,
                 text: str | None = None, defer: bool = False) -> AutoBuild:
    """Shard `module`, estimate every candidate per MoE layer on the routing (`trace`, or in dynamic
    mode without one a synthetic uniform trace), and compile the fastest plan that fits SRAM per
    layer (fsedp_compiler/pipeline/auto.py). `defer` (static): each layer's last lowering is left
    to emit-isa (`last_lowering_left`)."""
    import os

    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.inputs.trace_synth import synth_trace
    from fsedp_compiler.ir.layers import cached_trace, module_model
    from fsedp_compiler.ir.modules import require_target, verify_module
    from fsedp_compiler.pipeline.auto import SYNTH_SEED, SYNTH_STEPS, SYNTH_TOKENS, evaluate, lower_picks, parse_candidates
    from fsedp_compiler.pipeline.driver import run_passes

    names = parse_candidates(candidates, mode)
    run_passes(ctx, module, plan_passes(target=target, shards_per_chiplet=shards_per_chiplet, buffers=buffers,
                                        trace=trace),
               text=text, verify_each=verify_each, verify_at_end=False)
    system = require_target(module, "auto")
    model = module_model(module)
    if trace:
        routing = cached_trace(trace, model)
        if routing.num_chiplets != system.num_chiplets:
            raise FsedpError(f"trace spreads tokens over {routing.num_chiplets} chiplets but {system.name} has "
                             f"{system.num_chiplets}", path=trace, field="--trace")
        words = f"the routing of {os.path.basename(trace)} ({routing.num_steps} steps x {routing.num_tokens} tokens)"
    else:
        routing = synth_trace(model, SYNTH_TOKENS, SYNTH_STEPS, system.num_chiplets, "uniform", 0.0, SYNTH_SEED)
        words = (f"a synthetic uniform routing ({SYNTH_STEPS} steps x {SYNTH_TOKENS} tokens, seed {SYNTH_SEED}): "
                 "no --trace was given; give one to choose on real routing")
    choices = evaluate(module, routing, names, mode)
    picks = {c.layer: c.chosen.strategy for c in choices}

    def passes_of(strategy: str) -> list:
        passes = strategy_passes(strategy, trace=trace if mode == "static" else None, mode=mode)
        left = last_lowering_left(passes) if defer and mode == "static" else None
        return passes if left is None else left

    merged = lower_picks(ctx, module, picks, passes_of)
    verify_module(merged, text)
    return AutoBuild(merged, choices, words)
