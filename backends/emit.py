"""emit-isa: per-chiplet instruction streams (.fsa text, .bin binary) and program.json.

Static programs list every routed step's instructions (from `dataflow.instructions`); dynamic
programs are one step's when/where template (STREAMS, FOREACH, WHEN, WHERE and the leaf
instructions on the CURRENT shard), which the controller runs once per decode step.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from fsedp_compiler.backends.fsa import to_text
from fsedp_compiler.backends.isa import ANY_UNIT, CURRENT, INSTR_DTYPE, OPCODE, Program, encode, sha256_hex
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.dialects.fsedp import StaticScheduleOp
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fileio import atomic_write_bytes, atomic_write_text
from fsedp_compiler.ir import require_target, spec_from_module
from fsedp_compiler.layers import cached_trace, layer_contexts
from fsedp_compiler.target import Target, target_to_json

#: `dataflow.when` conditions as WHEN flags (backends/isa.py).
WHEN_CODES = {"home": 1, "member": 2, "forward": 3, "inbound": 5, "visit": 6}
WHERE_CODES = {"next": 1}
MANIFEST_FORMAT = "fsedpc-program"
TRACE_FILE = "trace.npz"


def _record(opcode: str, *, unit: int = 0, flags: int = 0, layer: int = 0, step: int = 0, expert: int = 0,
            shard: int = 0, arg: int = 0) -> tuple[int, ...]:
    return (OPCODE[opcode], unit, flags, layer, step, expert, shard, arg)


def _flatten(op: Operation, layer: int) -> list[tuple[int, ...]]:
    """The dynamic-mode instructions of one template op (regions become guarded counts)."""
    cur = {"layer": layer, "step": CURRENT, "expert": CURRENT, "shard": CURRENT}
    if isinstance(op, df.WhenOp):
        inner = [r for o in op.body.block.ops for r in _flatten(o, layer)]
        return [_record("when", flags=WHEN_CODES[op.prop_str("cond")], arg=len(inner))] + inner
    if isinstance(op, df.WhereOp):
        inner = [r for o in op.body.block.ops for r in _flatten(o, layer)]
        return [_record("where", flags=WHERE_CODES[op.prop_str("policy")])] + inner
    if isinstance(op, df.ForEachShardOp):
        inner = [r for o in op.body.block.ops for r in _flatten(o, layer)]
        return [_record("foreach", arg=len(inner))] + inner
    if isinstance(op, df.StreamsOp):
        return [_record("streams", layer=layer, step=CURRENT)]
    if isinstance(op, df.SyncOp):
        return [_record("sync", layer=layer, step=CURRENT)]
    leaf = {df.LoadOp: "load", df.RecvOp: "recv", df.SendOp: "send", df.FfnOp: "ffn", df.FreeOp: "free"}
    for cls, name in leaf.items():
        if isinstance(op, cls):
            unit = ANY_UNIT if name in ("load", "recv", "send") else 0
            return [_record(name, unit=unit, **cur)]
    raise FsedpError(f"emit-isa cannot encode '{op.name}' in a dynamic program")


def _array(rows: list[tuple[int, ...]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=INSTR_DTYPE)
    if rows:
        cols = np.asarray(rows, dtype=np.int64)
        for i, name in enumerate(INSTR_DTYPE.names):
            out[name] = cols[:, i]
    return out


def chiplet_ports(target: Target, chiplet: int) -> tuple[int, ...]:
    nbrs = {b for a, b in target.edges if a == chiplet} | {a for a, b in target.edges if b == chiplet}
    return tuple(sorted(nbrs))


def build_programs(module: ModuleOp) -> tuple[list[Program], dict[str, Any]]:
    """The ISA program of every chiplet, and facts for the manifest (mode, steps, trace)."""
    target = require_target(module, "emit-isa")
    programs = [o for o in module.ops if isinstance(o, df.ProgramOp)]
    if not programs:
        raise FsedpError("emit-isa needs dataflow programs; run lower-to-dataflow (and expand-dataflow) first")
    mode = programs[0].prop_str("mode")
    info: dict[str, Any] = {"mode": mode}
    local: list[int] = [0] * target.num_chiplets
    steps = 1
    if mode == "static":
        trace_path = next(c.schedule_op.prop_str("trace") if isinstance(c.schedule_op, StaticScheduleOp)
                          else c.baseline_op.prop_str("trace")
                          for c in layer_contexts(module)
                          if isinstance(c.schedule_op, StaticScheduleOp) or c.baseline_op is not None)
        trace = cached_trace(trace_path, spec_from_module(module))
        steps = trace.num_steps
        local = np.bincount(trace.token_chiplet, minlength=target.num_chiplets).tolist()
        # the trace travels with the program (a static program runs exactly this routing)
        info.update(trace=TRACE_FILE, trace_source=trace_path, steps=steps, tokens=trace.num_tokens,
                    trace_sha256=sha256_hex(Path(trace_path).read_bytes()))
    out: list[Program] = []
    for prog in sorted(programs, key=lambda p: p.prop_int("chiplet")):
        c = prog.prop_int("chiplet")
        parts: list[np.ndarray] = []
        body = list(prog.body.block.ops)
        for s in range(steps):
            for op in body:
                if isinstance(op, df.DenseOp):
                    layer = op.prop_int("layer")
                    if mode == "static":
                        parts.append(_array([_record("dense", layer=layer, step=s, arg=local[c])] if local[c] else []))
                    else:
                        parts.append(_array([_record("dense", layer=layer, step=CURRENT)]))
                elif isinstance(op, df.InstructionsOp):
                    off = op.prop_array("offsets")
                    cols = op.columns()
                    lo, hi = int(off[s]), int(off[s + 1])
                    arr = np.zeros(hi - lo, dtype=INSTR_DTYPE)
                    for name in INSTR_DTYPE.names:
                        arr[name] = op.prop_int("layer") if name == "layer" else cols[name][lo:hi]
                    parts.append(arr)
                elif isinstance(op, df.LayerOp):
                    if mode == "static":
                        raise FsedpError("static programs must be expanded first; run expand-dataflow")
                    layer = op.prop_int("layer")
                    parts.append(_array([r for o in op.body.block.ops for r in _flatten(o, layer)]))
        parts.append(_array([_record("halt")]))
        out.append(Program(chiplet=c, mode=mode, ports=chiplet_ports(target, c),
                           channels=target.chiplet.dram_channels if c in target.dram_at else 0,
                           instrs=np.concatenate(parts)))
    return out, info


def emit(module: ModuleOp, outdir: str, extra_files: dict[str, bytes] | None = None,
         strategy: str = "fsedp") -> dict[str, Any]:
    """Write chiplet_<i>.fsa/.bin, any `extra_files`, then program.json (last, so a manifest
    always describes complete files); returns the manifest."""
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise FsedpError("output path exists and is not a directory", path=outdir)
    os.makedirs(outdir, exist_ok=True)
    target = require_target(module, "emit-isa")
    model = spec_from_module(module)
    programs, info = build_programs(module)
    files: list[dict[str, Any]] = []
    for p in programs:
        text, data = to_text(p), encode(p)
        fsa, binf = f"chiplet_{p.chiplet}.fsa", f"chiplet_{p.chiplet}.bin"
        atomic_write_text(os.path.join(outdir, fsa), text)
        atomic_write_bytes(os.path.join(outdir, binf), data)
        files.append({"chiplet": p.chiplet, "fsa": fsa, "bin": binf, "instructions": int(len(p.instrs)),
                      "fsa_sha256": sha256_hex(text.encode()), "bin_sha256": sha256_hex(data)})
    extras = {}
    extra_files = dict(extra_files or {})
    if info["mode"] == "static":
        extra_files[TRACE_FILE] = Path(info["trace_source"]).read_bytes()
    for name, data in sorted(extra_files.items()):
        atomic_write_bytes(os.path.join(outdir, name), data)
        extras[name] = sha256_hex(data)
    layers = []
    for c in layer_contexts(module):
        plan = c.plan
        entry = {**dataclasses.asdict(c.spec), "shards": plan.num_shards, "buffers": plan.buffers,
                 "shard_bytes": plan.shard_bytes(0),
                 "shared_shard_bytes": plan.shard_bytes(c.spec.num_experts) if c.spec.num_shared else 0,
                 "channels": [list(ch) for ch in plan.channels]}
        if c.baseline_op is not None:
            entry.update(baseline=c.baseline_op.prop_str("strategy"),
                         hydra_skip_single=bool(c.baseline_op.prop_int("skip_single")))
        else:
            entry.update(order=c.policy.order, direction=c.policy.direction, trajectory=c.policy.trajectory)
        layers.append(entry)
    dense = [dataclasses.asdict(d) for d in model.dense]
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "model": model.name, "num_layers": model.num_layers,
                "strategy": strategy,
                **info, "target": target_to_json(target), "layers": layers, "dense": dense,
                "programs": files, "files": extras}
    atomic_write_text(os.path.join(outdir, "program.json"), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


@dataclass(frozen=True)
class EmitIsaPass(ModulePass):
    """Write the per-chiplet instruction streams and program.json into `output-dir`."""

    name = "emit-isa"

    output_dir: str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        emit(op, self.output_dir)
