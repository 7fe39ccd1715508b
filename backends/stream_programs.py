"""emit-isa's streamed static programs: every chiplet's `.bin` written a step at a time, the
layers still to be made (FSE-DP `dataflow.layer`s, baseline layers lowered without their
instructions) made one layer step at a time, so that memory holds one layer step whatever the
number of steps. Also the small helpers emit.py shares with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.baselines.expansion import BaselineExpansion, module_layouts
from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.inputs.traces import RoutingTrace
from fsedp_compiler.ir.layers import layer_contexts, module_routing
from fsedp_compiler.ir.modules import require_target
from fsedp_compiler.ir.static_expansion import StaticExpansion
from fsedp_compiler.isa import INSTR_DTYPE, BinWriter, header_size, neighbours, record

from fsedp_compiler.backends.stream_tables import instruction_records, ir_columns

Columns = dict[str, np.ndarray]
#: a made layer step: its rows in chiplet order and each chiplet's bounds in them (n + 1)
Made = tuple[Columns, np.ndarray]


def records_array(rows: list[tuple[int, ...]]) -> np.ndarray:
    """Full ISA records (with the layer column) as a record array."""
    out = np.zeros(len(rows), dtype=INSTR_DTYPE)
    if rows:
        cols = np.asarray(rows, dtype=object) if any(r[-1] >= 1 << 63 for r in rows) else np.asarray(rows)
        for i, name in enumerate(INSTR_DTYPE.names):
            out[name] = cols[:, i].astype(np.uint64) if name == "wide" else cols[:, i]
    return out


def static_trace(module: ModuleOp) -> RoutingTrace:
    """The routing a static module was compiled for (its `fsedp.routing`)."""
    trace = module_routing(module)
    if trace is None:
        raise FsedpError("a static program needs its routing in the IR; run schedule-streams{mode=static} "
                         "or lower-baseline first")
    return trace


#: instruction kinds by name, and those moving one shard or token block over a link
_KIND = {name: i for i, name in enumerate(df.KINDS)}
_SINGLE_D2D = [_KIND["send"], _KIND["toksend"], _KIND["reduce"]]


def moved_bytes(cols: Columns, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
    """(DRAM, D2D) bytes that rows lo..hi of `dataflow.instructions` columns move (the summary's)."""
    kind, arg, n = cols["kind"][lo:hi], cols["arg"][lo:hi], cols["n"][lo:hi]
    moved = arg * n  # range ops: bytes per shard x shard count
    single = np.isin(kind, _SINGLE_D2D)
    dram = int(moved[kind == _KIND["loads"]].sum() + arg[kind == _KIND["load"]].sum())
    return dram, int(moved[kind == _KIND["sends"]].sum() + arg[single].sum())


def pending_baselines(module: ModuleOp) -> list[int]:
    """The baseline layers whose instructions no program holds (`LowerBaselineOpsPass` leaves
    them to emit-isa), in module order."""
    lowered = {op.prop_int("layer") for prog in module.ops if isinstance(prog, df.ProgramOp)
               for op in prog.body.block.ops if isinstance(op, df.InstructionsOp)}
    return [c.spec.index for c in layer_contexts(module) if c.baseline_op is not None and c.spec.index not in lowered]


def _block_key(op: Operation | int) -> tuple[int, int]:
    """A program entry's place in block order: (block, 0) for its dense part, (block, 1) for its MoE layer."""
    if isinstance(op, int):
        return op, 1
    return op.prop_int("layer"), 0 if isinstance(op, df.DenseOp) else 1


def block_place(body: list[Operation | int], layer: int) -> int:
    """Where a pending baseline layer goes in a program's entries (where lower-baseline puts it)."""
    return next((i for i, op in enumerate(body) if _block_key(op) > (layer, 1)), len(body))


def _with_pending(body: list[Operation], pending: list[int]) -> list[Operation | int]:
    """A program's entries with each pending baseline layer (its index) at its block's place."""
    out: list[Operation | int] = list(body)
    for layer in pending:
        out.insert(block_place(out, layer), layer)
    return out


class FitsTextForms(Exception):
    """`emit(..., text_limit=L)` found a program of at most L instructions: nothing was written.
    `made` holds the layer steps made on the way (read back from the files), which `made.into_ir`
    puts into the module (as expand-dataflow and lower-baseline would) for the caller to write it
    with its text forms."""

    def __init__(self, count: int, made: MadeSteps) -> None:
        super().__init__(f"{count} instructions")
        self.count = count
        self.made = made


class MadeSteps:
    """Where a streamed emit wrote the layer steps it made (per layer and chiplet, each step's
    records in the chiplet's `.bin`), while the program has at most `limit` instructions; a small
    program's are read back from the files (`read_back`), so memory holds none while streaming."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spans: dict[int, dict[int, list[tuple[int, int]]]] | None = {}
        self.instructions: dict[tuple[int, int], tuple[np.ndarray, Columns]] = {}

    def span(self, layer: int, chiplet: int, lo: int, hi: int) -> None:
        """The layer's next step is records lo..hi of the chiplet's program."""
        if self.spans is not None:
            self.spans.setdefault(layer, {}).setdefault(chiplet, []).append((lo, hi))

    def written(self, count: int) -> None:
        """The program has `count` instructions so far."""
        if count > self.limit:
            self.spans = None

    def read_back(self, work: Path, ports: list[tuple[int, ...]]) -> None:
        """Each made layer's instructions per chiplet (step offsets, IR columns), from the `.bin`s."""
        assert self.spans is not None
        for c in sorted({c for by_chiplet in self.spans.values() for c in by_chiplet}):
            recs = np.fromfile(work / f"chiplet_{c}.bin", dtype=INSTR_DTYPE, offset=header_size(len(ports[c])))
            for layer, by_chiplet in self.spans.items():
                spans = by_chiplet.get(c, [])
                offsets = np.cumsum([0] + [hi - lo for lo, hi in spans])
                part = np.concatenate([recs[lo:hi] for lo, hi in spans]) if spans else recs[:0]
                self.instructions[(layer, c)] = (offsets, ir_columns(part))

    def into_ir(self, module: ModuleOp) -> None:
        """Every made layer's instructions into the module's programs, `dataflow.instructions` as
        expand-dataflow and lower-baseline build them: in place of its `dataflow.layer`, or for a
        pending baseline layer at its block's place; the templates go, as expand-dataflow drops them."""
        assert self.spans is not None, "the program was bigger than the limit"
        pending = pending_baselines(module)
        for prog in [o for o in module.ops if isinstance(o, df.ProgramOp)]:
            c = prog.prop_int("chiplet")
            for op in list(prog.body.block.ops):
                if isinstance(op, df.LayerOp) and op.prop_int("layer") in self.spans:
                    Rewriter.replace_op(op, self._instructions(op.prop_int("layer"), c))
            for layer in pending:
                body: list[Operation | int] = list(prog.body.block.ops)
                new = self._instructions(layer, c)
                at = block_place(body, layer)
                if at < len(body):
                    Rewriter.insert_op(new, InsertPoint.before(body[at]))
                else:
                    prog.body.block.add_op(new)
        for template in [o for o in module.ops if isinstance(o, df.TemplateOp)]:
            Rewriter.erase_op(template)

    def _instructions(self, layer: int, c: int) -> df.InstructionsOp:
        offsets, columns = self.instructions[(layer, c)]
        return df.InstructionsOp.build(layer, offsets, columns)


class _LayerSteps:
    """Makes the layers a streamed program still lacks, a step at a time: FSE-DP `dataflow.layer`s
    by the static expansion, pending baseline layers by the baseline lowering."""

    def __init__(self, module: ModuleOp, expanded: set[int], pending: list[int]) -> None:
        self.expansion = StaticExpansion(module, "emit-isa", module_layouts(module)) if expanded else None
        lowering = BaselineExpansion(module, "emit-isa") if pending else None
        self._baseline: dict[int, Iterator[Made]] = \
            {layer: lowering.step_columns(layer) for layer in pending} if lowering else {}

    def make(self, layer: int, step: int) -> Made:
        """The layer's rows of `step` (called for every step in order)."""
        if layer in self._baseline:
            return next(self._baseline[layer])
        assert self.expansion is not None
        return self.expansion.rows(layer, range(step, step + 1))

    def done(self, layer: int) -> None:
        """The layer's last step is written."""
        if self.expansion is not None:
            self.expansion.release(layer)
        self._baseline.pop(layer, None)


def stream_programs(module: ModuleOp, work: Path, moved: dict[int, list[int]],
                    made: MadeSteps | None = None) -> list[dict[str, Any]]:
    """Write every chiplet's `.bin` of a static module into `work` step by step: each layer's
    instructions of a step are made (`_LayerSteps`) or sliced (`dataflow.instructions`), appended
    to every chiplet's file and dropped. Adds each layer's DRAM and D2D bytes to `moved`, and where
    the made layer steps went to `made`. Returns program.json's entries of the programs (chiplet order)."""
    target = require_target(module, "emit-isa")
    programs = sorted((o for o in module.ops if isinstance(o, df.ProgramOp)), key=lambda p: p.prop_int("chiplet"))
    trace = static_trace(module)
    steps = trace.num_steps
    local = np.bincount(trace.token_chiplet, minlength=target.num_chiplets).tolist()
    pending = pending_baselines(module)
    bodies = {p.prop_int("chiplet"): _with_pending(list(p.body.block.ops), pending) for p in programs}
    users: dict[int, int] = {}  # per made layer, the programs that run it (its step's readers)
    for body in bodies.values():
        for op in body:
            if isinstance(op, (df.LayerOp, int)):
                layer = op if isinstance(op, int) else op.prop_int("layer")
                users[layer] = users.get(layer, 0) + 1
    maker = _LayerSteps(module, set(users) - set(pending), pending)
    ports = neighbours(target.edges, target.num_chiplets)
    sinks: dict[int, BinWriter] = {}
    written = {c: 0 for c in bodies}  # records written to each chiplet's program so far

    def write(c: int, recs: np.ndarray) -> None:
        sinks[c].write(recs)
        written[c] += len(recs)

    try:
        for c in bodies:
            sinks[c] = BinWriter(work / f"chiplet_{c}.bin", c, "static", ports[c],
                                 target.chiplet.dram_channels if c in target.dram_at else 0)
        width = max((len(b) for b in bodies.values()), default=0)
        for s in range(steps):
            step_of: dict[int, list] = {}  # layer -> [records of step s, chiplet bounds, readers left]
            for j in range(width):  # position by position: every program has the same blocks
                for c, body in bodies.items():
                    if j >= len(body):
                        continue
                    op = body[j]
                    if isinstance(op, df.DenseOp):
                        layer = op.prop_int("layer")
                        rows = [record("dense", l=layer, s=s, tokens=local[c])] if local[c] else []
                        write(c, records_array(rows + [record("sync", l=layer, s=s)]))
                    elif isinstance(op, df.InstructionsOp):
                        layer, off, cols = op.prop_int("layer"), op.prop_array("offsets"), op.columns()
                        lo, hi = int(off[s]), int(off[s + 1])
                        _add(moved, layer, moved_bytes(cols, lo, hi))
                        write(c, instruction_records(layer, cols, lo, hi))
                    else:
                        layer = op if isinstance(op, int) else op.prop_int("layer")
                        if layer not in step_of:
                            cols, bounds = maker.make(layer, s)
                            _add(moved, layer, moved_bytes(cols))
                            step_of[layer] = [instruction_records(layer, cols, 0, len(cols["kind"])), bounds,
                                              users[layer]]
                            del cols
                        entry = step_of[layer]
                        part = entry[0][int(entry[1][c]):int(entry[1][c + 1])]
                        if made is not None:
                            made.span(layer, c, written[c], written[c] + len(part))
                        write(c, part)
                        entry[2] -= 1
                        if entry[2] == 0:
                            del step_of[layer]
                            if s == steps - 1:
                                maker.done(layer)
            if made is not None:
                made.written(sum(written.values()))
        files = []
        for c, sink in sinks.items():
            sink.write(records_array([record("halt")]))
            digest = sink.close()  # writes the records still buffered
            files.append({"chiplet": c, "bin": f"chiplet_{c}.bin", "instructions": sink.count, "bin_sha256": digest})
        if made is not None and sum(f["instructions"] for f in files) <= made.limit:
            made.read_back(work, ports)
        return files
    except BaseException:
        for sink in sinks.values():
            sink.abandon()
        raise


def _add(moved: dict[int, list[int]], layer: int, amounts: tuple[int, int]) -> None:
    entry = moved.setdefault(layer, [0, 0])
    entry[0] += amounts[0]
    entry[1] += amounts[1]
