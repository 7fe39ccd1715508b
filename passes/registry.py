"""Pass registry: kebab-case name -> factory of the pass class (imported lazily, as in xDSL)."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _attach_target() -> type[ModulePass]:
    from fsedp_compiler.passes.attach_target import AttachTargetPass

    return AttachTargetPass


def _shard_experts() -> type[ModulePass]:
    from fsedp_compiler.passes.shard_experts import ShardExpertsPass

    return ShardExpertsPass


def _virtualize_streams() -> type[ModulePass]:
    from fsedp_compiler.passes.virtualize_streams import VirtualizeStreamsPass

    return VirtualizeStreamsPass


def _schedule_streams() -> type[ModulePass]:
    from fsedp_compiler.passes.schedule_streams import ScheduleStreamsPass

    return ScheduleStreamsPass


def _lower_to_dataflow() -> type[ModulePass]:
    from fsedp_compiler.passes.lower_to_dataflow import LowerToDataflowPass

    return LowerToDataflowPass


def _expand_dataflow() -> type[ModulePass]:
    from fsedp_compiler.passes.expand_dataflow import ExpandDataflowPass

    return ExpandDataflowPass


def _lower_baseline() -> type[ModulePass]:
    from fsedp_compiler.passes.lower_baseline import LowerBaselinePass

    return LowerBaselinePass


def _emit_isa() -> type[ModulePass]:
    from fsedp_compiler.passes.emit_isa import EmitIsaPass

    return EmitIsaPass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every fsedpc pass, by the name used in `-p` pipelines, in pipeline order."""
    return {
        "attach-target": _attach_target,
        "shard-experts": _shard_experts,
        "virtualize-streams": _virtualize_streams,
        "schedule-streams": _schedule_streams,
        "lower-to-dataflow": _lower_to_dataflow,
        "expand-dataflow": _expand_dataflow,
        "lower-baseline": _lower_baseline,
        "emit-isa": _emit_isa,
    }
