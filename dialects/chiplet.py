"""The `chiplet` dialect: a multi-chiplet system as attributes on the module.

`attach-target` puts one `#chiplet.system` on the module (attribute `chiplet.system`):

    #chiplet.system<name = "paper-2x2", chiplets = 4, topology = "mesh:2x2",
                    links = [[0, 1], [0, 2], [1, 3], [2, 3]], dram_at = [0, 1, 2, 3],
                    ring = [0, 1, 3, 2], chiplet = #chiplet.chiplet<...>, link = #chiplet.link<...>>

and, when the target sets its [cost] table, a trailing `cost = #chiplet.cost<...>`.

`ring` is the R1 virtual ring (DESIGN.md §1), a Hamiltonian cycle over `links`.
Units as in `fsedp_compiler.inputs.target`: GB/s, ns, TOPS, MiB, pJ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from xdsl.dialects.builtin import ArrayAttr, FloatData, IntAttr, StringAttr
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from fsedp_compiler.inputs.target import DTYPES, ChipletParams, CostParams, LinkParams, Target
from fsedp_compiler.inputs.topology import ring_problem, topology_problem

SYSTEM_ATTR = "chiplet.system"


def _fmt_float(value: float) -> str:
    """A float as an MLIR float literal (always with a '.', which MLIR needs before an exponent)."""
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _fmt(value: Attribute) -> str:
    if isinstance(value, IntAttr):
        return str(value.data)
    if isinstance(value, FloatData):
        return _fmt_float(value.data)
    if isinstance(value, StringAttr):
        return '"' + value.data.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, ArrayAttr):
        return "[" + ", ".join(_fmt(v) for v in value.data) + "]"
    raise TypeError(value)


def _parse_float(parser: AttrParser) -> Attribute:
    return FloatData(float(parser.parse_number()))


def _parse_int(parser: AttrParser) -> Attribute:
    return IntAttr(parser.parse_integer(allow_boolean=False))


def _parse_str(parser: AttrParser) -> Attribute:
    return StringAttr(parser.parse_str_literal())


def _parse_int_list(parser: AttrParser) -> Attribute:
    return ArrayAttr(parser.parse_comma_separated_list(parser.Delimiter.SQUARE, lambda: _parse_int(parser)))


def _parse_pair_list(parser: AttrParser) -> Attribute:
    return ArrayAttr(parser.parse_comma_separated_list(parser.Delimiter.SQUARE, lambda: _parse_int_list(parser)))


def _parse_attr(parser: AttrParser) -> Attribute:
    return parser.parse_attribute()


class _KeyValueAttr(ParametrizedAttribute):
    """Custom syntax `<key = value, ...>` in declaration order, with a verifier run at parse
    time so a bad value is reported at its file:line:col."""

    FIELDS: ClassVar[tuple[tuple[str, Callable[[AttrParser], Attribute]], ...]] = ()
    #: Trailing fields that may be left out: (key, parse, default). Printed only when they differ
    #: from the default, so adding one keeps the text of every attribute that leaves it out.
    OPTIONAL: ClassVar[tuple[tuple[str, Callable[[AttrParser], Attribute], Callable[[], Attribute]], ...]] = ()

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        start = parser.pos
        values: list[Attribute] = []
        with parser.in_angle_brackets():
            for i, (key, parse_value) in enumerate(cls.FIELDS):
                if i:
                    parser.parse_punctuation(",", f" before '{key}'")
                parser.parse_keyword(key, f" (field {i + 1} of {cls.name})")
                parser.parse_punctuation("=")
                values.append(parse_value(parser))
            for key, parse_value, default in cls.OPTIONAL:
                if parser.parse_optional_punctuation(",") is None:
                    values.append(default())
                    continue
                parser.parse_keyword(key, f" (optional field of {cls.name})")
                parser.parse_punctuation("=")
                values.append(parse_value(parser))
        try:
            cls.check(values)
        except VerifyException as err:
            parser.raise_error(f"invalid {cls.name}: {err}", start, parser.pos)
        return values

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<")
        keys = [key for key, _ in self.FIELDS] + [key for key, _, _ in self.OPTIONAL]
        defaults = [None] * len(self.FIELDS) + [default() for _, _, default in self.OPTIONAL]
        for i, (key, value, default) in enumerate(zip(keys, self.parameters, defaults)):
            if default is not None and value == default:
                continue
            printer.print_string(f"{', ' if i else ''}{key} = ")
            if isinstance(value, _KeyValueAttr):
                printer.print_attribute(value)
            else:
                printer.print_string(_fmt(value))
        printer.print_string(">")

    @classmethod
    def check(cls, values: Sequence[Attribute]) -> None:
        """Semantic checks on the parameter values (raise VerifyException)."""

    def verify(self) -> None:
        self.check(self.parameters)


_PER_DTYPE = tuple(f"tops_{d}" for d in DTYPES) + tuple(f"pj_per_mac_{d}" for d in DTYPES)


@irdl_attr_definition
class ChipletAttr(_KeyValueAttr):
    """Parameters shared by every chiplet of a system (DRAM ones apply where `dram_at` says)."""

    name = "chiplet.chiplet"

    tops_int8: FloatData
    tops_fp8: FloatData
    tops_bf16: FloatData
    tops_fp16: FloatData
    sram_mib: FloatData
    dram_channels: IntAttr
    dram_gbps_per_channel: FloatData
    dram_latency_ns: FloatData
    dram_pj_per_bit: FloatData
    sram_pj_per_bit: FloatData
    pj_per_mac_int8: FloatData
    pj_per_mac_fp8: FloatData
    pj_per_mac_bf16: FloatData
    pj_per_mac_fp16: FloatData

    FIELDS = (
        *((f"tops_{d}", _parse_float) for d in DTYPES),
        ("sram_mib", _parse_float),
        ("dram_channels", _parse_int),
        ("dram_gbps_per_channel", _parse_float),
        ("dram_latency_ns", _parse_float),
        ("dram_pj_per_bit", _parse_float),
        ("sram_pj_per_bit", _parse_float),
        *((f"pj_per_mac_{d}", _parse_float) for d in DTYPES),
    )

    @classmethod
    def check(cls, values: Sequence[Attribute]) -> None:
        named = dict(zip((k for k, _ in cls.FIELDS), values))
        for key in ("sram_mib", "dram_gbps_per_channel", *(f"tops_{d}" for d in DTYPES)):
            if _value(named[key]) <= 0:
                raise VerifyException(f"{key} must be > 0")
        if _value(named["dram_channels"]) < 1:
            raise VerifyException("dram_channels must be >= 1")
        for key in ("dram_latency_ns", "dram_pj_per_bit", "sram_pj_per_bit", *(f"pj_per_mac_{d}" for d in DTYPES)):
            if _value(named[key]) < 0:
                raise VerifyException(f"{key} must be >= 0")

    @staticmethod
    def from_params(p: ChipletParams) -> ChipletAttr:
        tops, pj = dict(p.tops), dict(p.pj_per_mac)
        return ChipletAttr(
            *(FloatData(tops[d]) for d in DTYPES),
            FloatData(p.sram_mib),
            IntAttr(p.dram_channels),
            FloatData(p.dram_gbps_per_channel),
            FloatData(p.dram_latency_ns),
            FloatData(p.dram_pj_per_bit),
            FloatData(p.sram_pj_per_bit),
            *(FloatData(pj[d]) for d in DTYPES),
        )

    def params(self) -> ChipletParams:
        return ChipletParams(
            tops=tuple((d, getattr(self, f"tops_{d}").data) for d in DTYPES),
            sram_mib=self.sram_mib.data,
            dram_channels=self.dram_channels.data,
            dram_gbps_per_channel=self.dram_gbps_per_channel.data,
            dram_latency_ns=self.dram_latency_ns.data,
            dram_pj_per_bit=self.dram_pj_per_bit.data,
            sram_pj_per_bit=self.sram_pj_per_bit.data,
            pj_per_mac=tuple((d, getattr(self, f"pj_per_mac_{d}").data) for d in DTYPES),
        )


@irdl_attr_definition
class LinkAttr(_KeyValueAttr):
    """Parameters of every die-to-die link: GB/s per direction, latency, energy."""

    name = "chiplet.link"

    gbps: FloatData
    latency_ns: FloatData
    pj_per_bit: FloatData

    FIELDS = (("gbps", _parse_float), ("latency_ns", _parse_float), ("pj_per_bit", _parse_float))

    @classmethod
    def check(cls, values: Sequence[Attribute]) -> None:
        gbps, latency, pj = (_value(v) for v in values)
        if gbps <= 0:
            raise VerifyException(f"link bandwidth must be > 0, got {gbps}")
        if latency < 0 or pj < 0:
            raise VerifyException("link latency_ns and pj_per_bit must be >= 0")

    @staticmethod
    def from_params(p: LinkParams) -> LinkAttr:
        return LinkAttr(FloatData(p.gbps), FloatData(p.latency_ns), FloatData(p.pj_per_bit))

    def params(self) -> LinkParams:
        return LinkParams(self.gbps.data, self.latency_ns.data, self.pj_per_bit.data)


@irdl_attr_definition
class CostAttr(_KeyValueAttr):
    """The cost model's utilisation knobs (a target's [cost] table): FFN ops charged at least
    `min_tokens` token slots plus `op_overhead_ns`; the dynamic scheduler's ns per active expert."""

    name = "chiplet.cost"

    min_tokens: IntAttr
    op_overhead_ns: IntAttr
    scheduler_ns_per_expert: IntAttr

    FIELDS = (("min_tokens", _parse_int), ("op_overhead_ns", _parse_int), ("scheduler_ns_per_expert", _parse_int))

    @classmethod
    def check(cls, values: Sequence[Attribute]) -> None:
        min_tokens, overhead, per_expert = (_value(v) for v in values)
        if min_tokens < 1:
            raise VerifyException(f"min_tokens must be >= 1, got {min_tokens}")
        if overhead < 0 or per_expert < 0:
            raise VerifyException("op_overhead_ns and scheduler_ns_per_expert must be >= 0")

    @staticmethod
    def from_params(p: CostParams) -> CostAttr:
        return CostAttr(IntAttr(p.min_tokens), IntAttr(p.op_overhead_ns), IntAttr(p.scheduler_ns_per_expert))

    def params(self) -> CostParams:
        return CostParams(self.min_tokens.data, self.op_overhead_ns.data, self.scheduler_ns_per_expert.data)


@irdl_attr_definition
class SystemAttr(_KeyValueAttr):
    """A chiplet system: topology, links, DRAM placement, the R1 virtual ring and parameters."""

    name = "chiplet.system"

    sys_name: StringAttr
    chiplets: IntAttr
    topology: StringAttr
    links: ArrayAttr[ArrayAttr[IntAttr]]
    dram_at: ArrayAttr[IntAttr]
    ring: ArrayAttr[IntAttr]
    chiplet: ChipletAttr
    link: LinkAttr
    cost: CostAttr

    FIELDS = (
        ("name", _parse_str),
        ("chiplets", _parse_int),
        ("topology", _parse_str),
        ("links", _parse_pair_list),
        ("dram_at", _parse_int_list),
        ("ring", _parse_int_list),
        ("chiplet", _parse_attr),
        ("link", _parse_attr),
    )
    OPTIONAL = (("cost", _parse_attr, lambda: CostAttr.from_params(CostParams())),)

    @classmethod
    def check(cls, values: Sequence[Attribute]) -> None:
        _, chiplets, _, links, dram_at, ring, chiplet, link, cost = values
        n = _value(chiplets)
        if n < 1:
            raise VerifyException(f"chiplets must be >= 1, got {n}")
        pairs = []
        for pair in _value(links):
            if len(pair) != 2:
                raise VerifyException(f"each link is a pair of chiplets, got {pair}")
            pairs.append((pair[0], pair[1]))
        if (problem := topology_problem(n, pairs)) is not None:
            raise VerifyException(problem)
        dram = _value(dram_at)
        if not dram or any(not 0 <= c < n for c in dram) or len(set(dram)) != len(dram):
            raise VerifyException(f"dram_at must list distinct chiplets in 0..{n - 1}, got {dram}")
        if (problem := ring_problem(n, pairs, tuple(_value(ring)))) is not None:
            raise VerifyException(f"no valid virtual ring (R1): {problem}")
        if not isinstance(chiplet, ChipletAttr):
            raise VerifyException("chiplet must be a #chiplet.chiplet attribute")
        if not isinstance(link, LinkAttr):
            raise VerifyException("link must be a #chiplet.link attribute")
        if not isinstance(cost, CostAttr):
            raise VerifyException("cost must be a #chiplet.cost attribute")

    @staticmethod
    def from_target(t: Target) -> SystemAttr:
        return SystemAttr(
            StringAttr(t.name),
            IntAttr(t.num_chiplets),
            StringAttr(t.topology),
            ArrayAttr([ArrayAttr([IntAttr(a), IntAttr(b)]) for a, b in t.edges]),
            ArrayAttr([IntAttr(c) for c in t.dram_at]),
            ArrayAttr([IntAttr(c) for c in t.ring]),
            ChipletAttr.from_params(t.chiplet),
            LinkAttr.from_params(t.link),
            CostAttr.from_params(t.cost),
        )

    def target(self) -> Target:
        return Target(
            name=self.sys_name.data,
            num_chiplets=self.chiplets.data,
            topology=self.topology.data,
            edges=tuple((p[0], p[1]) for p in _value(self.links)),
            dram_at=tuple(_value(self.dram_at)),
            ring=tuple(_value(self.ring)),
            chiplet=self.chiplet.params(),
            link=self.link.params(),
            cost=self.cost.params(),
        )


def _value(attr: Attribute) -> Any:
    """The plain Python value of an int/float/string attribute or nested array of them."""
    if isinstance(attr, (IntAttr, FloatData, StringAttr)):
        return attr.data
    if isinstance(attr, ArrayAttr):
        return [_value(a) for a in attr.data]
    return attr


Chiplet = Dialect("chiplet", [], [SystemAttr, ChipletAttr, LinkAttr, CostAttr])
