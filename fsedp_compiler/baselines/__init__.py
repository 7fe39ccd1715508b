"""Baseline strategies: lowerings of a MoE layer step to a task graph (`taskgraph.TaskGraph`).

`plan_layer` turns every routed step of one layer into a graph; the compiler encodes the graphs
as per-chiplet instructions (passes/lower_baseline.py) and the simulator rebuilds them from the
same routing, checks the program says exactly that, and times them (`taskgraph.execute`).
"""

from __future__ import annotations

from fsedp_compiler.model import MoeLayerSpec
from fsedp_compiler.ring import Ring
from fsedp_compiler.routing import RoutingTrace
from fsedp_compiler.shardplan import ShardPlan
from fsedp_compiler.target import Target
from fsedp_compiler.taskgraph import TaskGraph

from .common import Builder, Options, StepRoute, Topology
from .dp import plan_dp, plan_fsdp
from .ep import EpState, plan_ep, plan_serial
from .tp import plan_tp

__all__ = ["BASELINES", "INEXACT", "Options", "plan_layer"]

BASELINES: dict[str, str] = {
    "ep": "strong expert parallel: whole experts on DRAM-chiplet owners, tokens to owners, overlapped tiles",
    "ep-serial": "the paper's EP: one whole expert resident per chiplet, no load/compute overlap",
    "hydra": "the paper's Hydra: EP on the chiplet holding most tokens, heavy/light paired",
    "ep-cache": "ep with an LRU cache of whole experts in each owner's free SRAM",
    "tp": "tensor parallel: 1/N of every expert per chiplet, token all-gather, partial reduce-scatter",
    "dp": "replicated data parallel: each needing chiplet reads the whole expert itself",
    "fsdp": "FSDP-style: each tile read once, multicast to needing chiplets, whole expert gathered",
}

INEXACT = "hydra with --hydra-skip-single never computes experts routed a single token (authors' code)"


def plan_layer(strategy: str, spec: MoeLayerSpec, plan: ShardPlan, target: Target, ring: Ring,
               trace: RoutingTrace, layer_pos: int, options: Options = Options()) -> list[TaskGraph]:
    """One graph per routed step of the layer, in step order (ep-cache carries its cache)."""
    if strategy not in BASELINES:
        raise ValueError(strategy)
    topo = Topology(target)
    state = EpState()
    graphs = []
    for s in range(trace.num_steps):
        experts, _ = trace.step(layer_pos, s)
        route = StepRoute.build(experts, trace.token_chiplet, plan)
        graph = TaskGraph(spec.index, s, resident=[0] * target.num_chiplets)
        b = Builder(graph, spec, plan, target, topo)
        if strategy in ("ep", "ep-cache"):
            plan_ep(b, route, state, cache=strategy == "ep-cache")
        elif strategy in ("ep-serial", "hydra"):
            plan_serial(b, route, options, hydra=strategy == "hydra")
        elif strategy == "tp":
            plan_tp(b, route, ring)
        elif strategy == "dp":
            plan_dp(b, route)
        else:
            plan_fsdp(b, route)
        graphs.append(graph)
    return graphs
