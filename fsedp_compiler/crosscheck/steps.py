"""Real layer steps as cross-check instances: routed steps of one MoE layer of a real model on a
real system, with the shard plan `fsedpc compile` would use.

The random instances of `crosscheck_report.random_instances` are tiny (a few dozen shards), so
CP-SAT proves most optima; a real step is what the scheduler meets: Qwen3-30B-A3B at 16 tokens
on mesh-4x4 is 91 streams of 16 shards each, 1,456 shards and 12,449 link transfers. Nothing is
shrunk: the plan's shards per chiplet and buffers default to the compiler's (0: automatic), the
routing is a trace's step or a synthetic one (`routing.synth_trace`, seeded), and the step is
one MoE layer's, as every cross-check instance is. Verification stays exact at that size; the
gap solve is cut short by the work limit and reads [best found, bound].
"""

from __future__ import annotations

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.crosscheck.instance import Instance
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.scheduler import StepRouting
from fsedp_compiler.fsedp.shardplan import ShardPlan, make_shard_plan
from fsedp_compiler.inputs.model import ModelSpec, MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import RoutingTrace


def step_plan(layer: MoeLayerSpec, target: Target, shards_per_chiplet: int = 0, buffers: int = 0,
              active: int | None = None) -> ShardPlan:
    """The plan `shard-experts` makes: 0 shards per chiplet or 0 buffers choose automatically
    (`active`: the fewest experts a step of the trace activates)."""
    from fsedp_compiler.passes.shard_experts import auto_buffers_plan, auto_plan

    if buffers == 0:
        return auto_buffers_plan(layer, target, shards_per_chiplet, active)
    if shards_per_chiplet == 0:
        return auto_plan(layer, target, buffers)
    return make_shard_plan(layer, target, shards_per_chiplet, buffers)


def synth_steps(model: ModelSpec, target: Target, tokens: int, steps: int, skew: str = "uniform",
                locality: float = 0.0, seed: int = 0) -> RoutingTrace:
    """A synthetic trace of `steps` decode steps of `tokens` tokens spread over the target's chiplets."""
    return synth_trace(model, tokens, steps, target.num_chiplets, skew, locality, seed)


def step_instances(model: ModelSpec, target: Target, trace: RoutingTrace, layer_index: int | None = None,
                   first_step: int = 0, steps: int = 1, shards_per_chiplet: int = 0,
                   buffers: int = 0) -> list[Instance]:
    """One instance per step `first_step .. first_step + steps - 1` of MoE layer `layer_index`
    (default: the model's first) of `trace`."""
    if trace.num_chiplets != target.num_chiplets:
        raise FsedpError(f"the trace spreads its tokens over {trace.num_chiplets} chiplets, "
                         f"{target.name} has {target.num_chiplets}", field="--trace")
    index = model.moe[0].index if layer_index is None else layer_index
    if index not in trace.layer_indices:
        raise FsedpError(f"the trace has no MoE layer {index} (it has {list(trace.layer_indices)})", field="--layer")
    if steps < 1:
        raise FsedpError(f"must be at least 1, got {steps}", field="--steps")
    if not 0 <= first_step or first_step + steps > trace.num_steps:
        raise FsedpError(f"steps {first_step}..{first_step + steps - 1} are not all in the trace's "
                         f"0..{trace.num_steps - 1}", field="--step")
    from fsedp_compiler.passes.shard_experts import fewest_active

    layer = model.moe_layer(index)
    pos = trace.layer_indices.index(index)
    plan = step_plan(layer, target, shards_per_chiplet, buffers, fewest_active(trace, pos, layer.num_shared))
    ring, cost = Ring(target.ring), CostModel(target, layer.dtype)
    rings = (ring, *(Ring(r) for r in target.rings[1:]))  # R1's first, as `fsedpc compile` has them
    out = []
    for step in range(first_step, first_step + steps):
        experts, weights = trace.step(pos, step)
        out.append(Instance(plan, ring, cost, StepRouting(experts, weights, trace.token_chiplet, index, step),
                            rings=rings))
    return out
