"""Shared custom syntax for ops written as `name key value key value ... [{attrs}] [region]`.

Values: `int` (i64 IntegerAttr), `ident` (StringAttr printed bare), `str` (quoted StringAttr),
`ints` (an i64 `array<...>` printed as `[1, 2]`), `names` (indices into the op's `NAMES`,
printed as `[load, send]`), `array` (a dense array printed in MLIR's `array<i32: ...>` form, for
the large per-step tables). Numpy helpers read and build arrays
without per-element Python work.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import BytesAttr, DenseArrayBase, IntegerAttr, IntegerType, StringAttr, i8, i16, i32, i64
from xdsl.ir import Attribute
from xdsl.irdl import IRDLOperation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.mlir_lexer import MLIRTokenKind

_NP = {8: "<i1", 16: "<i2", 32: "<i4", 64: "<i8"}
_TYPES = {8: i8, 16: i16, 32: i32, 64: i64}


def dense(values: np.ndarray | list[int], bits: int = 32) -> DenseArrayBase:
    """A dense integer array attribute built straight from bytes."""
    arr = np.ascontiguousarray(np.asarray(values, dtype=_NP[bits]))
    return DenseArrayBase(_TYPES[bits], BytesAttr(arr.tobytes()))


def as_numpy(attr: DenseArrayBase) -> np.ndarray:
    elt = attr.elt_type
    assert isinstance(elt, IntegerType)
    return np.frombuffer(attr.data.data, dtype=_NP[elt.width.data])


def dense_text(attr: DenseArrayBase) -> str:
    """`array<iN: ...>` as MLIR prints it, built in one join (xDSL's printer goes per element)."""
    elt = attr.elt_type
    assert isinstance(elt, IntegerType)
    values = as_numpy(attr)
    if len(values) == 0:
        return f"array<i{elt.width.data}>"
    return f"array<i{elt.width.data}: " + ", ".join(map(str, values.tolist())) + ">"


def int_attr(value: int) -> IntegerAttr:
    return IntegerAttr(int(value), i64)



def parse_word(parser: Parser, key: str) -> str:
    """An identifier that may contain hyphens (`per-shard`, `single-entry`): xDSL's lexer splits
    those into identifier, `-`, identifier, so the printed IR would not parse back otherwise."""
    word = parser.parse_identifier(f" after '{key}'")
    while parser._current_token.kind == MLIRTokenKind.MINUS:
        minus = parser._current_token.span
        parser._consume_token()
        nxt = parser._current_token
        if minus.start != nxt.span.start - 1 or nxt.kind != MLIRTokenKind.BARE_IDENT:
            parser.raise_error(f"expected an identifier after '{word}-'", minus)
        word += "-" + parser.parse_identifier()
    return word

class KeywordSyntax(IRDLOperation):
    """Mixin: custom format from `SYNTAX = (("key", "kind"), ...)` over the op's properties."""

    SYNTAX: ClassVar[tuple[tuple[str, str], ...]] = ()
    NAMES: ClassVar[tuple[str, ...]] = ()
    """The words of a `names` field (printed and parsed by name, stored as indices)."""
    OPTIONAL: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Trailing `ident` fields with a default: printed (and needed) only when not the default."""
    HAS_REGION: ClassVar[bool] = False

    @classmethod
    def parse(cls, parser: Parser):
        props: dict[str, Attribute] = {}
        for key, kind in cls.SYNTAX:
            parser.parse_keyword(key, f" in {cls.name}")
            if kind == "int":
                props[key] = int_attr(parser.parse_integer(allow_boolean=False))
            elif kind == "ident":
                props[key] = StringAttr(parse_word(parser, key))
            elif kind == "str":
                props[key] = StringAttr(parser.parse_str_literal(f" after '{key}'"))
            elif kind == "ints":
                values = parser.parse_comma_separated_list(
                    parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False))
                props[key] = dense(values, 64)
            elif kind == "names":  # identifiers of cls.NAMES, stored as their i8 indices
                start = parser.pos
                words = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_identifier)
                unknown = [w for w in words if w not in cls.NAMES]
                if unknown:
                    parser.raise_error(f"unknown {key} '{unknown[0]}'; expected one of {', '.join(cls.NAMES)}",
                                       start, parser.pos)
                props[key] = dense([cls.NAMES.index(w) for w in words], 8)
            elif kind == "array":
                start = parser.pos
                attr = parser.parse_attribute()
                if not isinstance(attr, DenseArrayBase):
                    parser.raise_error(f"'{key}' must be an array<iN: ...> attribute", start, parser.pos)
                props[key] = attr
            else:  # pragma: no cover
                raise AssertionError(kind)
        for key, default in cls.OPTIONAL:
            props[key] = StringAttr(parse_word(parser, key) if parser.parse_optional_keyword(key) else default)
        # before a region a bare `{` opens the region, so extra attributes need the keyword
        attr_dict = parser.parse_optional_attr_dict_with_keyword() if cls.HAS_REGION else None
        attrs = attr_dict.data if attr_dict is not None else ({} if cls.HAS_REGION else parser.parse_optional_attr_dict())
        regions = [parser.parse_region()] if cls.HAS_REGION else []
        return cls.create(properties=props, attributes=attrs, regions=regions)

    def print(self, printer: Printer) -> None:
        for key, kind in self.SYNTAX:
            value = self.properties[key]
            printer.print_string(f" {key} ")
            if kind == "int":
                assert isinstance(value, IntegerAttr)
                printer.print_string(str(value.value.data))
            elif kind == "ident":
                assert isinstance(value, StringAttr)
                printer.print_string(value.data)
            elif kind == "str":
                assert isinstance(value, StringAttr)
                printer.print_string_literal(value.data)
            elif kind == "ints":
                assert isinstance(value, DenseArrayBase)
                printer.print_string("[" + ", ".join(map(str, as_numpy(value).tolist())) + "]")
            elif kind == "names":
                assert isinstance(value, DenseArrayBase)
                names = self.NAMES
                printer.print_string("[" + ", ".join(names[i] if 0 <= i < len(names) else f"<{i}>"
                                                     for i in as_numpy(value).tolist()) + "]")
            else:
                assert isinstance(value, DenseArrayBase)
                printer.print_string(dense_text(value))
        for key, default in self.OPTIONAL:
            value = self.properties[key]
            assert isinstance(value, StringAttr)
            if value.data != default:
                printer.print_string(f" {key} {value.data}")
        if self.attributes:
            printer.print_string(" attributes " if self.HAS_REGION else " ")
            printer.print_attr_dict(self.attributes)
        if self.HAS_REGION:
            printer.print_string(" ")
            printer.print_region(self.regions[0])

    def prop_int(self, key: str) -> int:
        value = self.properties[key]
        assert isinstance(value, IntegerAttr)
        return value.value.data

    def prop_str(self, key: str) -> str:
        value = self.properties[key]
        assert isinstance(value, StringAttr)
        return value.data

    def prop_array(self, key: str) -> np.ndarray:
        value = self.properties[key]
        assert isinstance(value, DenseArrayBase)
        return as_numpy(value)
