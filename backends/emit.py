"""emit-isa: per-chiplet instruction streams (.fsa text, .bin binary) and program.json.

Static programs list every routed step's instructions (from `dataflow.instructions`); dynamic
programs are one step's when/where template (STREAMS, FOREACH, WHEN, WHERE and the leaf
instructions on the CURRENT shard), which the controller runs once per decode step.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from fsedp_compiler.baselines.expansion import module_layouts
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.digest import with_digest
from fsedp_compiler.files.fileio import atomic_directory
from fsedp_compiler.inputs.target import Target, target_to_json
from fsedp_compiler.inputs.traces import trace_bytes
from fsedp_compiler.ir.layers import layer_contexts, module_routing
from fsedp_compiler.ir.layout import layouts_to_npz
from fsedp_compiler.ir.modules import require_target, spec_from_module
from fsedp_compiler.isa import ANY_ADDR, ANY_UNIT, CONDITIONS, CURRENT, POLICIES, TABLES_FILE, Program, encode, neighbours, record, sha256_hex, to_text

from fsedp_compiler.backends.stream_programs import (FitsTextForms, MadeSteps, moved_bytes, pending_baselines,
                                                     records_array, static_trace, stream_programs)
from fsedp_compiler.backends.stream_tables import instruction_records, module_stream_tables

__all__ = ["TEXT_LIMIT", "FitsTextForms", "build_programs", "emit", "expansion_bound", "instruction_count",
           "module_layouts", "moved_bytes", "write_text"]

#: `dataflow.when` conditions and `dataflow.where` policies, by name, as the ISA encodes them
WHEN_CODES = {name: code for code, name in CONDITIONS.items()}
WHERE_CODES = {name: code for code, name in POLICIES.items()}
MANIFEST_FORMAT = "fsedpc-program"
TRACE_FILE = "trace.npz"
LAYOUT_FILE = "layout.npz"
MANIFEST_VERSION = 2


def _flatten(op: Operation, layer: int) -> list[tuple[int, ...]]:
    """The dynamic-mode records of one template op (regions become guarded record counts)."""
    cur = {"l": layer, "s": CURRENT, "e": CURRENT, "j": CURRENT}
    if isinstance(op, (df.WhenOp, df.WhereOp, df.ForEachShardOp)):
        inner = [r for o in op.body.block.ops for r in _flatten(o, layer)]
        if isinstance(op, df.WhenOp):
            return [record("when", cond=WHEN_CODES[op.prop_str("cond")], n=len(inner))] + inner
        if isinstance(op, df.WhereOp):
            return [record("where", policy=WHERE_CODES[op.prop_str("policy")])] + inner
        return [record("foreach", n=len(inner))] + inner
    if isinstance(op, df.StreamsOp):
        return [record("streams", l=layer, s=CURRENT)]
    if isinstance(op, df.SyncOp):
        return [record("sync", l=layer, s=CURRENT)]
    if isinstance(op, df.LoadOp):
        return [record("load", ch=ANY_UNIT, addr=ANY_ADDR, **cur)]
    if isinstance(op, (df.RecvOp, df.SendOp)):
        return [record("recv" if isinstance(op, df.RecvOp) else "send", port=ANY_UNIT, **cur)]
    if isinstance(op, df.FfnOp):
        return [record("ffn", **cur)]
    if isinstance(op, df.FreeOp):
        return [record("free", **cur)]
    raise FsedpError(f"emit-isa cannot encode '{op.name}' in a dynamic program")


def build_programs(module: ModuleOp) -> tuple[Iterator[Program], dict[str, Any]]:
    """The ISA program of every chiplet (made one at a time, in chiplet order, so that a big
    static program is never all in memory twice), and facts for the manifest (mode, steps, tokens).

    A block step is its dense part (`dense`, then a `sync` barrier) and, on MoE blocks, the
    step's MoE instructions ending in their own `sync`; a dynamic program is one step's worth,
    which the controller runs once per decode step."""
    target = require_target(module, "emit-isa")
    programs = [o for o in module.ops if isinstance(o, df.ProgramOp)]
    if not programs:
        raise FsedpError("emit-isa needs dataflow programs; run lower-to-dataflow (and expand-dataflow) first")
    mode = programs[0].prop_str("mode")
    if mode == "static" and pending_baselines(module):
        raise FsedpError("static programs must be lowered first; run lower-baseline")
    info: dict[str, Any] = {"mode": mode}
    local: list[int] = [0] * target.num_chiplets
    steps = 1
    if mode == "static":
        trace = static_trace(module)
        steps = trace.num_steps
        local = np.bincount(trace.token_chiplet, minlength=target.num_chiplets).tolist()
        info.update(trace=TRACE_FILE, steps=steps, tokens=trace.num_tokens)
    templates = {o.prop_str("name"): o for o in module.ops if isinstance(o, df.TemplateOp)}
    return _programs(target, programs, templates, mode, steps, local), info


def _programs(target: Target, programs: list[df.ProgramOp], templates: dict[str, df.TemplateOp], mode: str,
              steps: int, local: list[int]) -> Iterator[Program]:
    for prog in sorted(programs, key=lambda p: p.prop_int("chiplet")):
        c = prog.prop_int("chiplet")
        parts: list[np.ndarray] = []
        body = list(prog.body.block.ops)
        for s in range(steps):
            for op in body:
                if isinstance(op, df.DenseOp):
                    layer = op.prop_int("layer")
                    step = s if mode == "static" else CURRENT
                    rows = [record("dense", l=layer, s=step, tokens=local[c])] if mode == "dynamic" or local[c] else []
                    parts.append(records_array(rows + [record("sync", l=layer, s=step)]))
                elif isinstance(op, df.InstructionsOp):
                    off = op.prop_array("offsets")
                    parts.append(instruction_records(op.prop_int("layer"), op.columns(), int(off[s]), int(off[s + 1])))
                elif isinstance(op, df.LayerOp):
                    if mode == "static":
                        raise FsedpError("static programs must be expanded first; run expand-dataflow")
                    layer = op.prop_int("layer")
                    parts.append(records_array([r for o in templates[op.prop_str("template")].body.block.ops
                                         for r in _flatten(o, layer)]))
        parts.append(records_array([record("halt")]))
        yield Program(chiplet=c, mode=mode, ports=neighbours(target.edges, target.num_chiplets)[c],
                      channels=target.chiplet.dram_channels if c in target.dram_at else 0,
                      instrs=np.concatenate(parts))


def layer_strategies_of(module: ModuleOp) -> dict[int, str]:
    """Each MoE layer's strategy as its ops say: a baseline's name, or the FSE-DP variant whose
    policy it runs (`fsedp` for a policy of its own, e.g. `--order id`)."""
    from fsedp_compiler.strategies import FSEDP

    by_policy = {policy: name for name, policy in reversed(FSEDP.items())}
    out = {}
    for c in layer_contexts(module):
        if c.baseline_op is not None:
            out[c.spec.index] = c.baseline_op.prop_str("strategy")
        else:
            p = c.policy
            out[c.spec.index] = by_policy.get((p.order, p.direction, p.trajectory, p.rings), "fsedp")
    return out


#: `fsedpc compile --text auto` writes the text forms (.fsa, final.mlir) of programs up to this
#: many instructions; beyond it the `.bin` alone (what runs), which `fsedpc disasm` prints.
TEXT_LIMIT = 1_000_000


def instruction_count(module: ModuleOp) -> int:
    """About how many instructions the module's programs hold (their expanded steps), to decide
    on the text forms before writing anything."""
    return sum(len(op.prop_array("kind")) for op in module.walk() if isinstance(op, df.InstructionsOp))


def expansion_bound(module: ModuleOp) -> int | None:
    """At least as many instructions as the module's programs will hold once every static layer is
    expanded, from its schedules alone (no expansion): per stream at most a load per DRAM channel
    of the plan and, per chiplet, two receives, two sends (one per ring way), an FFN and a free;
    per step and chiplet a table and a sync; the dense parts, and what is expanded already. None
    when a baseline layer is still to be lowered (its count is known only by lowering it)."""
    from fsedp_compiler.dialects.fsedp import StaticScheduleOp

    if pending_baselines(module):
        return None
    target = require_target(module, "emit-isa")
    n = target.num_chiplets
    total = instruction_count(module)
    for c in layer_contexts(module):
        if isinstance(c.schedule_op, StaticScheduleOp):
            streams = len(c.schedule_op.prop_array("experts"))
            total += streams * (len(c.plan.channels) + 6 * n) + 2 * n * c.schedule_op.prop_int("steps")
    trace = module_routing(module)
    steps = trace.num_steps if trace is not None else 1
    dense = sum(1 for op in module.walk() if isinstance(op, df.DenseOp))
    return total + 2 * dense * steps + n


def write_text(module: ModuleOp, choice: str) -> bool:
    """Whether `--text choice` (auto, always, never) writes the text forms of this module's program."""
    return choice == "always" or (choice == "auto" and instruction_count(module) <= TEXT_LIMIT)


def emit(module: ModuleOp, outdir: str, extra_files: dict[str, bytes] | None = None,
         strategy: str | None = None, layer_strategies: dict[int, str] | None = None,
         text: bool = True, text_limit: int | None = None, moved: dict[int, list[int]] | None = None,
         ) -> dict[str, Any]:
    """Write chiplet_<i>.bin and (`text`) chiplet_<i>.fsa, layout.npz, the trace and stream tables
    (static), any `extra_files` and
    program.json into `outdir`, as one whole directory: it is built beside `outdir` and swapped
    in when complete, so a failure leaves an earlier output as it was and no stale file of an
    earlier, larger program survives. `strategy` names the program's strategy (by default the
    module's: its layers' one strategy, or `auto` when they differ); `layer_strategies` (`auto`)
    names each MoE layer's in program.json. Returns the manifest.

    A static program without its text forms is written step by step (`stream_programs.py`): its
    `dataflow.layer`s may still be unexpanded and its baseline layers unlowered, and `moved` (when
    given) receives each layer's [DRAM, D2D] bytes, which the module then no longer holds. With
    `text_limit`, a program of at most that many instructions raises `FitsTextForms` (with the
    layer steps made on the way) and leaves `outdir` as it was."""
    if strategy is None:
        found = layer_strategies_of(module)
        if len(set(found.values())) > 1:
            strategy, layer_strategies = "auto", found
        else:
            strategy = next(iter(found.values()), "fsedp")
    target = require_target(module, "emit-isa")
    model = spec_from_module(module)
    streamed = not text and any(isinstance(o, df.ProgramOp) and o.prop_str("mode") == "static" for o in module.ops)
    if streamed:
        programs, info = iter(()), {"mode": "static"}
        trace = static_trace(module)
        info.update(trace=TRACE_FILE, steps=trace.num_steps, tokens=trace.num_tokens)
    else:
        programs, info = build_programs(module)
    extra_files = dict(extra_files or {})
    # made when written, one at a time, after the programs: none is in memory with another
    made: dict[str, Callable[[], bytes | None]] = {LAYOUT_FILE: lambda: layouts_to_npz(module_layouts(module))}
    if info["mode"] == "static":
        made[TRACE_FILE] = lambda: trace_bytes(static_trace(module))
        # the stream tables, once for every chiplet (their steps name them); None: no FSE-DP layer
        made[TABLES_FILE] = lambda: module_stream_tables(module)
    with atomic_directory(outdir) as work:
        files: list[dict[str, Any]] = []
        if streamed:
            kept = MadeSteps(text_limit) if text_limit is not None else None
            files = stream_programs(module, work, {} if moved is None else moved, kept)
            count = sum(f["instructions"] for f in files)
            if kept is not None and count <= kept.limit:
                raise FitsTextForms(count, kept)  # the temporary directory goes, outdir stays as it was
        for p in programs:
            data = encode(p)
            binf = f"chiplet_{p.chiplet}.bin"
            (work / binf).write_bytes(data)
            files.append({"chiplet": p.chiplet, "bin": binf, "instructions": int(len(p.instrs)),
                          "bin_sha256": sha256_hex(data)})
            if text:  # the program's text form (absent: compiled without it, `fsedpc disasm` prints it)
                fsa, source = f"chiplet_{p.chiplet}.fsa", to_text(p).encode()
                (work / fsa).write_bytes(source)
                files[-1].update(fsa=fsa, fsa_sha256=sha256_hex(source))
            del p, data
        extras = {}
        for name in sorted({*extra_files, *made}):
            data = made[name]() if name in made else extra_files[name]
            if data is None:
                continue
            (work / name).write_bytes(data)
            extras[name] = sha256_hex(data)
            del data
        layers = []
        for c in layer_contexts(module):
            plan = c.plan
            entry = {**dataclasses.asdict(c.spec), "shards": plan.num_shards, "buffers": plan.buffers,
                     "shard_bytes": plan.shard_bytes(0),
                     "shared_shard_bytes": plan.shard_bytes(c.spec.num_experts) if c.spec.num_shared else 0,
                     "channels": [list(ch) for ch in plan.channels]}
            if layer_strategies is not None:
                entry["strategy"] = layer_strategies[c.spec.index]
            if c.baseline_op is not None:
                entry.update(baseline=c.baseline_op.prop_str("strategy"),
                             hydra_skip_single=bool(c.baseline_op.prop_int("skip_single")))
            else:
                entry.update(order=c.policy.order, direction=c.policy.direction, trajectory=c.policy.trajectory,
                             rings=c.policy.rings)
            layers.append(entry)
        dense = [dataclasses.asdict(d) for d in model.dense]
        manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "model": model.name,
                    "num_layers": model.num_layers, "strategy": strategy, "edited": False,
                    **info, "target": target_to_json(target), "layers": layers, "dense": dense,
                    "programs": files, "files": extras}
        manifest = with_digest(manifest)  # program.json's own fields are covered too (manifest_sha256)
        (work / "program.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
