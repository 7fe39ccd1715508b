"""Pass registry: kebab-case name -> factory of the pass class (imported lazily)."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _attach_target() -> type[ModulePass]:
    from fsedp_compiler.passes.attach_target import AttachTargetPass

    return AttachTargetPass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every fsedpc pass, by the name used in `-p` pipelines."""
    return {
        "attach-target": _attach_target,
    }
