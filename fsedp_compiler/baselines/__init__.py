"""Baseline strategies: lowerings of a MoE layer step to a task graph (`taskgraph.TaskGraph`).

`plan_layer` turns every routed step of one layer into a graph; the compiler encodes the graphs
as per-chiplet instructions (passes/lower_baseline.py) and the simulator rebuilds them from the
same routing, checks the program says exactly that, and times them (`taskgraph.execute`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fsedp_compiler.baselines.taskgraph import TaskGraph
from fsedp_compiler.fsedp.ring import Ring
from fsedp_compiler.fsedp.shardplan import ShardPlan
from fsedp_compiler.inputs.model import MoeLayerSpec
from fsedp_compiler.inputs.target import Target
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layout import Placement, fsedp_placement
from fsedp_compiler.strategies import BASELINES, INEXACT

from fsedp_compiler.baselines.common import Builder, Options, StepRoute, Topology
from fsedp_compiler.baselines.dp import plan_dp, plan_fsdp
from fsedp_compiler.baselines.ep import EpState, plan_ep, plan_serial
from fsedp_compiler.baselines.tp import plan_tp, plan_tp_per_expert

__all__ = ["BASELINES", "INEXACT", "Options", "layer_graphs", "placement", "plan_layer"]



def placement(strategy: str, plan: ShardPlan, target: Target) -> Placement:
    """Where `strategy` keeps tile j of expert e in DRAM (the program's DRAM image).

    EP-like strategies keep a routed expert whole on its owner (`ep_owner`), tile j on channel
    j mod channels, and shared experts as TP does; TP keeps slice c (tiles [c*g, (c+1)*g)) at
    chiplet c, or at a nearest DRAM chiplet (balanced: `Topology.slice_stores`); dp and fsdp use
    FSE-DP's round-robin deal."""
    if strategy in ("dp", "fsdp"):
        return fsedp_placement(plan)
    channels = target.chiplet.dram_channels
    dram = np.asarray(target.dram_at, dtype=np.int64)
    g = plan.num_shards // target.num_chiplets
    store = np.array(Topology(target).slice_stores)
    tp = strategy in ("tp", "tp-per-expert")
    first_shared = plan.layer.num_experts

    def place(e: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, j = np.broadcast_arrays(e, j)
        chiplet = np.where(tp | (e >= first_shared), store[j // g], dram[e % len(dram)])
        return chiplet, j % channels

    return place


def plan_layer(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, ring: Ring,
               trace: RoutingTrace, layer_pos: int, options: Options = Options()) -> list[TaskGraph]:
    """One graph per routed step of the layer, in step order (ep-cache carries its cache)."""
    return list(layer_graphs(strategy, spec, plan, target, ring, trace, layer_pos, options))


def layer_graphs(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, ring: Ring,
                 trace: RoutingTrace, layer_pos: int, options: Options = Options()) -> Iterator[TaskGraph]:
    """`plan_layer`'s graphs made one step at a time; while suspended it holds none of them (a
    caller keeps many layers' generators)."""
    if strategy not in BASELINES:
        raise ValueError(strategy)
    topo = Topology(target)
    where = placement(strategy, plan, target)(np.arange(plan.num_streams)[:, None], np.arange(plan.num_shards)[None, :])
    state = EpState()
    for s in range(trace.num_steps):
        yield _step_graph(strategy, spec, plan, target, ring, trace, layer_pos, options, topo, where, state, s)


def _step_graph(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, ring: Ring,
                trace: RoutingTrace, layer_pos: int, options: Options, topo: Topology, where: tuple,
                state: EpState, s: int) -> TaskGraph:
    """Step s's graph (ep-cache's `state` carried from the step before)."""
    experts, _ = trace.step(layer_pos, s)
    route = StepRoute.build(experts, trace.token_chiplet, plan)
    graph = TaskGraph(spec.index, s, resident=[0] * target.num_chiplets)
    b = Builder(graph, spec, plan, target, topo, where)
    if strategy in ("ep", "ep-cache"):
        plan_ep(b, route, ring, state, cache=strategy == "ep-cache", layers=options.moe_layers)
    elif strategy in ("ep-serial", "hydra"):
        plan_serial(b, route, ring, options, hydra=strategy == "hydra")
    elif strategy == "tp":
        plan_tp(b, route, ring)
    elif strategy == "tp-per-expert":
        plan_tp_per_expert(b, route, ring)
    elif strategy == "dp":
        plan_dp(b, route)
    else:
        plan_fsdp(b, route)
    return graph
