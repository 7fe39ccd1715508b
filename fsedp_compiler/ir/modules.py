"""Reading, verifying and writing fsedpc IR: the xDSL context, located errors, spec <-> module.

Parsed ops are stamped with their `file:line:col` so that verifier errors (and later pass
errors) point at the source line like the parser's own errors do.
"""

from __future__ import annotations

import io
import re

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, FileLineColLoc, IntAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.lexer import Span

from fsedp_compiler.dialects.chiplet import SYSTEM_ATTR, Chiplet, SystemAttr
from fsedp_compiler.dialects.dataflow import Dataflow
from fsedp_compiler.dialects.fsedp import FSEDP
from fsedp_compiler.dialects.moe import MAX_LAYER_INDEX, MODEL_ATTR, NUM_LAYERS_ATTR, DenseOp, LayerOp, MoE

from fsedp_compiler.errors import FsedpError, source_context
from fsedp_compiler.files.fileio import display_name, read_text
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.inputs.target import Target


def make_context() -> Context:
    """A context with every dialect fsedpc reads and writes."""
    ctx = Context()
    for dialect in (Builtin, MoE, Chiplet, FSEDP, Dataflow):
        ctx.load_dialect(dialect)
    return ctx


class LocatingParser(Parser):
    """An xDSL parser that records each operation's source position as its location; a value
    an attribute cannot hold (an integer beyond i64, an opcode beyond i8) is a parse error there."""

    def parse_operation(self) -> Operation:
        start = self.pos
        try:
            op = super().parse_operation()
        except (VerifyException, ValueError, OverflowError, NotImplementedError) as err:  # e.g. array<i72: ...>
            message = str(err).removeprefix("Operation does not verify: ").splitlines() or [type(err).__name__]
            self.raise_error(message[0], start, self.pos)
        if not isinstance(op.location, FileLineColLoc):
            loc = Span(start, start, self.lexer.input).get_location()
            op.location = FileLineColLoc(StringAttr(loc.file), IntAttr(loc.line), IntAttr(loc.col))
        return op


def op_error(op: Operation, message: str, text: str | None = None) -> FsedpError:
    """An error located at `op`'s source position when it was parsed from a file."""
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        line, col = loc.line.data, loc.column.data
        ctx = source_context(text, line, col) if text is not None else None
        return FsedpError(f"'{op.name}' {message}", path=loc.filename.data, line=line, col=col, context=ctx)
    return FsedpError(f"'{op.name}' {message}")


def verify_module(module: ModuleOp, text: str | None = None) -> None:
    """Verify every op; the first failure becomes a located `FsedpError`."""
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as err:
            message = str(err).removeprefix("Operation does not verify: ")
            raise op_error(op, message, text) from None


# A comment, or a string literal with the escapes xDSL 0.74 accepts, ending in its closing quote
# or (group 1 empty) at the first character that cannot continue it. Unlike xDSL's pattern this
# has no nested quantifier, so it runs in linear time (README: Known issues).
_COMMENT_OR_STRING = re.compile(r'//[^\n]*|"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*("?)')
_LINE_BREAKS = "\n\v\f"


def check_string_literals(text: str, path: str) -> None:
    """Reject an unterminated string literal or an unknown escape, located, before xDSL sees it.

    xDSL 0.74's lexer backtracks exponentially on either (minutes for a 30-character line)."""
    for match in _COMMENT_OR_STRING.finditer(text):
        if match.group(1) is None or match.group(1):  # a comment, or a string that closes
            continue
        stop = match.end()
        escape = text[stop:stop + 2]
        if escape.startswith("\\") and len(escape) == 2 and escape[1] not in _LINE_BREAKS:
            pos = stop
            message = (f"unknown escape sequence '{escape}' in a string literal "
                       "(known: \\n \\t \\\\ \\\" and two hex digits)")
        else:
            pos = match.start()
            message = "string literal is not closed on its line (a '\"' is missing)"
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        raise FsedpError(message, path=path, line=line, col=col, context=source_context(text, line, col))


def parse_module(text: str, path: str, ctx: Context | None = None, *, verify: bool = True) -> ModuleOp:
    """Parse MLIR text; parse and verifier errors are reported at their file:line:col."""
    check_string_literals(text, path)
    try:
        module = LocatingParser(ctx or make_context(), text, path).parse_module()
    except ParseError as err:
        loc = err.span.get_location()
        raise FsedpError(err.msg, path=path, line=loc.line, col=loc.col,
                         context=source_context(text, loc.line, loc.col)) from None
    if not isinstance(module.location, FileLineColLoc):  # top-level ops without a module around them
        module.location = FileLineColLoc(StringAttr(path), IntAttr(1), IntAttr(1))
    if verify:
        verify_module(module, text)
    return module


def load_module(path: str, ctx: Context | None = None, *, verify: bool = True) -> ModuleOp:
    """Read (`-`: standard input), parse and verify an MLIR file."""
    return parse_module(read_text(path, "MLIR file"), display_name(path), ctx, verify=verify)


def print_module(op: Operation, *, generic: bool = False) -> str:
    """The textual IR of `op`, ending in a newline."""
    stream = io.StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(op)
    return stream.getvalue() + "\n"


# --- model spec <-> moe module ---------------------------------------------------------------

def module_from_spec(spec: ModelSpec) -> ModuleOp:
    """A `moe` module: per block its `moe.dense`, then its `moe.layer` on MoE blocks."""
    ops: list[Operation] = []
    moe_by_index = {m.index: m for m in spec.moe}
    for dense in sorted(spec.dense, key=lambda d: d.index):
        ops.append(DenseOp(dense))
        if dense.index in moe_by_index:
            ops.append(LayerOp(moe_by_index.pop(dense.index)))
    ops += [LayerOp(m) for _, m in sorted(moe_by_index.items())]
    module = ModuleOp(ops)
    module.attributes[MODEL_ATTR] = StringAttr(spec.name)
    module.attributes[NUM_LAYERS_ATTR] = IntegerAttr(spec.num_layers, i64)
    return module


def module_text_from_spec(spec: ModelSpec) -> str:
    module = module_from_spec(spec)
    verify_module(module)
    return print_module(module)


def spec_from_module(module: ModuleOp, text: str | None = None) -> ModelSpec:
    """The model a verified `moe` module describes; structural mistakes are located errors."""
    name = module.attributes.get(MODEL_ATTR)
    if not isinstance(name, StringAttr):
        raise op_error(module, f"needs a string attribute '{MODEL_ATTR}' naming the model", text)
    dense: dict[int, DenseOp] = {}
    layers: dict[int, LayerOp] = {}
    for op in module.ops:
        table: dict[int, DenseOp] | dict[int, LayerOp] | None
        table = dense if isinstance(op, DenseOp) else layers if isinstance(op, LayerOp) else None
        if table is None:
            continue
        index = op.index.value.data
        if index in table:
            raise op_error(op, f"duplicates layer index {index}", text)
        table[index] = op  # type: ignore[assignment]
    if not layers:
        raise op_error(module, "contains no moe.layer", text)
    declared = module.attributes.get(NUM_LAYERS_ATTR)
    top = max([*dense, *layers]) + 1
    if declared is not None and not (isinstance(declared, IntegerAttr) and isinstance(declared.value.data, int)):
        raise op_error(module, f"needs an integer attribute '{NUM_LAYERS_ATTR}' (e.g. = 4 : i64), got {declared}", text)
    num_layers = declared.value.data if isinstance(declared, IntegerAttr) else top
    if num_layers > MAX_LAYER_INDEX + 1:
        raise op_error(module, f"{NUM_LAYERS_ATTR} = {num_layers} exceeds the limit of {MAX_LAYER_INDEX + 1}", text)
    for op in [*dense.values(), *layers.values()]:
        if op.index.value.data >= num_layers:
            raise op_error(op, f"layer index {op.index.value.data} is not below {NUM_LAYERS_ATTR} = {num_layers}", text)
    return ModelSpec(
        name=name.data,
        num_layers=num_layers,
        dense=tuple(dense[i].spec for i in sorted(dense)),
        moe=tuple(layers[i].spec for i in sorted(layers)),
    )


def load_model_spec(path: str) -> ModelSpec:
    """Parse, verify and interpret a `moe` module file (`-`: standard input)."""
    text = read_text(path, "MLIR file")
    return spec_from_module(parse_module(text, display_name(path)), text)


def module_target(module: ModuleOp) -> Target | None:
    """The chiplet system attached by `attach-target`, if any."""
    attr = module.attributes.get(SYSTEM_ATTR)
    return attr.target() if isinstance(attr, SystemAttr) else None


def require_target(module: ModuleOp, pass_name: str) -> Target:
    """The module's target, or an error telling the user to run attach-target first."""
    target = module_target(module)
    if target is None:
        raise FsedpError(f"{pass_name} needs a chiplet system on the module; run attach-target first")
    return target
