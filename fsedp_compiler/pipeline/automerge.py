"""Splicing MoE layers lowered by different strategies into one program (`--strategy auto`).

Each strategy's module is compiled whole from the same sharded module (same shard plans, same
routing); the spliced module takes, per MoE layer, that layer's ops from the module of the
strategy chosen for it: its `fsedp.streams` and schedule, or its `fsedp.baseline`, and on every
chiplet its `dataflow.instructions` (static) or `dataflow.layer` (dynamic). Dense blocks and the
routing are the same in every module. A static program written without its text forms is
spliced before its last lowering (`compile_auto(defer=True)`): its FSE-DP layers are still
`dataflow.layer`s (their template comes along) and its baseline layers have no program op yet;
emit-isa makes both in the spliced program's own DRAM image.

One thing differs between modules beyond the layer itself: the DRAM image. Each channel stores
its tiles layer after layer (`layout.build_layouts`), so a layer's addresses depend on how the
layers before it were placed. Like a linker, the splice relocates: every load's address is
recomputed from its (expert, tile) in the spliced program's own image, which `emit-isa` writes
and the machine checks.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from fsedp_compiler.dialects import dataflow as df
from fsedp_compiler.ir.layers import LayerContext, layer_contexts

_LOADS = [df.KINDS.index("load"), df.KINDS.index("loads")]


def _layer_ops(ctx: LayerContext) -> list[Operation]:
    """The per-layer ops a strategy adds after the shard plan, in module order."""
    return [op for op in (ctx.streams_op, ctx.schedule_op, ctx.baseline_op) if op is not None]


def _program_layer_ops(module: ModuleOp) -> dict[tuple[int, int], Operation]:
    """(chiplet, layer) -> that layer's op in the chiplet's program."""
    out = {}
    for prog in module.ops:
        if isinstance(prog, df.ProgramOp):
            for op in prog.body.block.ops:
                if isinstance(op, (df.InstructionsOp, df.LayerOp)):
                    out[(prog.prop_int("chiplet"), op.prop_int("layer"))] = op
    return out


def splice(modules: dict[str, ModuleOp], picks: dict[int, str]) -> ModuleOp:
    """One module running layer l as `modules[picks[l]]` does (the modules are consumed)."""
    base = picks[min(picks)]
    out = modules[base]
    out_layers = {c.spec.index: c for c in layer_contexts(out)}
    out_programs = _program_layer_ops(out)
    out_chiplets = [o for o in out.ops if isinstance(o, df.ProgramOp)]
    for strategy, src in modules.items():
        if strategy == base:
            continue
        src_layers = {c.spec.index: c for c in layer_contexts(src)}
        src_programs = _program_layer_ops(src)
        for layer in sorted(i for i, s in picks.items() if s == strategy):
            target_ctx = out_layers[layer]
            for old in _layer_ops(target_ctx):
                Rewriter.erase_op(old)
            anchor: Operation | None = target_ctx.plan_op
            assert anchor is not None
            for op in _layer_ops(src_layers[layer]):
                new = op.clone()
                Rewriter.insert_op(new, InsertPoint.after(anchor))
                anchor = new
            for prog in out_chiplets:
                _swap_program_op(prog, layer, out_programs.get((prog.prop_int("chiplet"), layer)),
                                 src_programs.get((prog.prop_int("chiplet"), layer)))
        _copy_templates(out, src)
    relocate(out)
    return out


def _swap_program_op(prog: df.ProgramOp, layer: int, old: Operation | None, new: Operation | None) -> None:
    """In chiplet program `prog`, the layer's op `old` becomes a clone of `new` (the chosen
    strategy's). Either may be missing: a baseline layer whose instructions emit-isa makes."""
    from fsedp_compiler.backends.stream_programs import block_place

    clone = new.clone() if new is not None else None
    if old is not None and clone is not None:
        Rewriter.replace_op(old, clone)
    elif old is not None:
        Rewriter.erase_op(old)
    elif clone is not None:
        body = list(prog.body.block.ops)
        at = block_place(body, layer)
        if at < len(body):
            Rewriter.insert_op(clone, InsertPoint.before(body[at]))
        else:
            prog.body.block.add_op(clone)


def _copy_templates(out: ModuleOp, src: ModuleOp) -> None:
    """The `dataflow.template`s of `src` that `out`'s programs now run and it lacks."""
    have = {o.prop_str("name") for o in out.ops if isinstance(o, df.TemplateOp)}
    wanted = {op.prop_str("template") for prog in out.ops if isinstance(prog, df.ProgramOp)
              for op in prog.body.block.ops if isinstance(op, df.LayerOp)}
    for template in [o for o in src.ops if isinstance(o, df.TemplateOp)]:
        if template.prop_str("name") in wanted - have:
            out.body.block.add_op(template.clone())


def relocate(module: ModuleOp) -> None:
    """Point every load of every static program at its tile's address in the module's own DRAM
    image (a no-op for a module one strategy lowered)."""
    from fsedp_compiler.backends.emit import module_layouts

    layouts = module_layouts(module)
    for prog in [o for o in module.ops if isinstance(o, df.ProgramOp)]:
        for op in [o for o in prog.body.block.ops if isinstance(o, df.InstructionsOp)]:
            cols = op.columns()
            loads = np.isin(cols["kind"], _LOADS)
            if not loads.any():
                continue
            addr = layouts[op.prop_int("layer")].addr[cols["expert"][loads], cols["shard"][loads]]
            if np.array_equal(cols["wide"][loads], addr):
                continue
            cols = {k: v.copy() for k, v in cols.items()}
            cols["wide"][loads] = addr
            Rewriter.replace_op(op, df.InstructionsOp.build(op.prop_int("layer"), op.prop_array("offsets"), cols))
