"""The `moe` dialect: a Mixture-of-Experts model as the compiler's input.

A `builtin.module` carries the model name (`moe.model`) and total decoder block count
(`moe.num_layers`); inside it, each block has a `moe.dense` (per-token cost of attention and
other non-expert parts) and, on MoE blocks, a `moe.layer` with the expert FFN's shape.

    moe.dense 0 attention flops_per_token 67108864 weight_bytes 67108864
    moe.layer 0 experts 8 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
    moe.layer 1 experts 64 top_k 6 d_model 2048 d_ffn 1408 shared 2 x 1408 swiglu bf16
"""

from __future__ import annotations

from xdsl.dialects.builtin import I64, IntegerAttr, StringAttr, i64
from xdsl.ir import Dialect
from xdsl.irdl import IRDLOperation, irdl_op_definition, prop_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from fsedp_compiler.inputs.model import ACTIVATIONS, DTYPE_BYTES, DenseSpec, MoeLayerSpec

MODEL_ATTR = "moe.model"
NUM_LAYERS_ATTR = "moe.num_layers"


#: Limits of a model (the machine's, as in program.json; sim/manifest.py), checked by the verifiers.
MAX_LAYER_INDEX = 65535
MAX_EXPERTS = 65534
MAX_SHARED = 64
MAX_DIM = 1 << 20
MAX_COST = 1 << 50


def _check_limits(spec: object, limits: dict[str, int]) -> None:
    """Raise a VerifyException for the first field of `spec` above its limit."""
    for field, limit in limits.items():
        if getattr(spec, field) > limit:
            raise VerifyException(f"{field} = {getattr(spec, field)} exceeds the limit of {limit}")


def _int(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def _parse_kw_int(parser: Parser, keyword: str) -> IntegerAttr:
    parser.parse_keyword(keyword)
    return _int(parser.parse_integer(allow_boolean=False, context_msg=f" after '{keyword}'"))


@irdl_op_definition
class LayerOp(IRDLOperation):
    """The expert FFN of decoder block `index`: routed experts (top-k) and shared experts."""

    name = "moe.layer"

    index = prop_def(IntegerAttr[I64])
    d_model = prop_def(IntegerAttr[I64])
    d_ffn = prop_def(IntegerAttr[I64])
    num_experts = prop_def(IntegerAttr[I64])
    top_k = prop_def(IntegerAttr[I64])
    num_shared = prop_def(IntegerAttr[I64])
    d_ffn_shared = prop_def(IntegerAttr[I64])
    activation = prop_def(StringAttr)
    dtype = prop_def(StringAttr)

    def __init__(self, spec: MoeLayerSpec) -> None:
        super().__init__(
            properties={
                "index": _int(spec.index),
                "d_model": _int(spec.d_model),
                "d_ffn": _int(spec.d_ffn),
                "num_experts": _int(spec.num_experts),
                "top_k": _int(spec.top_k),
                "num_shared": _int(spec.num_shared),
                "d_ffn_shared": _int(spec.d_ffn_shared),
                "activation": StringAttr(spec.activation),
                "dtype": StringAttr(spec.dtype),
            }
        )

    @property
    def spec(self) -> MoeLayerSpec:
        return MoeLayerSpec(
            index=self.index.value.data,
            d_model=self.d_model.value.data,
            d_ffn=self.d_ffn.value.data,
            num_experts=self.num_experts.value.data,
            top_k=self.top_k.value.data,
            num_shared=self.num_shared.value.data,
            d_ffn_shared=self.d_ffn_shared.value.data,
            activation=self.activation.data,
            dtype=self.dtype.data,
        )

    def verify_(self) -> None:
        s = self.spec
        if s.index < 0:
            raise VerifyException(f"layer index must be >= 0, got {s.index}")
        for field in ("d_model", "d_ffn", "num_experts", "top_k"):
            if getattr(s, field) <= 0:
                raise VerifyException(f"{field} must be > 0, got {getattr(s, field)}")
        _check_limits(s, {"index": MAX_LAYER_INDEX, "num_experts": MAX_EXPERTS, "num_shared": MAX_SHARED,
                          "d_model": MAX_DIM, "d_ffn": MAX_DIM, "d_ffn_shared": MAX_DIM})
        if s.top_k > s.num_experts:
            raise VerifyException(f"top_k ({s.top_k}) must be <= num_experts ({s.num_experts})")
        if s.num_shared < 0:
            raise VerifyException(f"num_shared must be >= 0, got {s.num_shared}")
        if s.num_shared > 0 and s.d_ffn_shared <= 0:
            raise VerifyException(f"d_ffn_shared must be > 0 with {s.num_shared} shared experts")
        if s.num_shared == 0 and s.d_ffn_shared != 0:
            raise VerifyException("d_ffn_shared must be 0 without shared experts")
        if s.activation not in ACTIVATIONS:
            raise VerifyException(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{s.activation}'")
        if s.dtype not in DTYPE_BYTES:
            raise VerifyException(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got '{s.dtype}'")

    @classmethod
    def parse(cls, parser: Parser) -> LayerOp:
        props: dict[str, IntegerAttr | StringAttr] = {
            "index": _int(parser.parse_integer(allow_boolean=False, context_msg=" (layer index)"))
        }
        props["num_experts"] = _parse_kw_int(parser, "experts")
        props["top_k"] = _parse_kw_int(parser, "top_k")
        props["d_model"] = _parse_kw_int(parser, "d_model")
        props["d_ffn"] = _parse_kw_int(parser, "d_ffn")
        props["num_shared"], props["d_ffn_shared"] = _int(0), _int(0)
        if parser.parse_optional_keyword("shared"):
            props["num_shared"] = _int(parser.parse_integer(allow_boolean=False))
            parser.parse_keyword("x", " between shared expert count and size")
            props["d_ffn_shared"] = _int(parser.parse_integer(allow_boolean=False))
        props["activation"] = StringAttr(parser.parse_keyword_in(ACTIVATIONS, " (activation)"))
        props["dtype"] = StringAttr(parser.parse_keyword_in(tuple(DTYPE_BYTES), " (dtype)"))
        attrs = parser.parse_optional_attr_dict()
        return cls.create(properties=dict(props), attributes=attrs)

    def print(self, printer: Printer) -> None:
        s = self.spec
        text = f" {s.index} experts {s.num_experts} top_k {s.top_k} d_model {s.d_model} d_ffn {s.d_ffn}"
        if s.num_shared:
            text += f" shared {s.num_shared} x {s.d_ffn_shared}"
        printer.print_string(f"{text} {s.activation} {s.dtype}")
        if self.attributes:
            printer.print_string(" ")
            printer.print_attr_dict(self.attributes)


@irdl_op_definition
class DenseOp(IRDLOperation):
    """The non-MoE part of decoder block `index` as a per-token cost (FLOPs and weight bytes)."""

    name = "moe.dense"

    index = prop_def(IntegerAttr[I64])
    kind = prop_def(StringAttr)
    flops_per_token = prop_def(IntegerAttr[I64])
    weight_bytes = prop_def(IntegerAttr[I64])

    def __init__(self, spec: DenseSpec) -> None:
        super().__init__(
            properties={
                "index": _int(spec.index),
                "kind": StringAttr(spec.kind),
                "flops_per_token": _int(spec.flops_per_token),
                "weight_bytes": _int(spec.weight_bytes),
            }
        )

    @property
    def spec(self) -> DenseSpec:
        return DenseSpec(
            index=self.index.value.data,
            flops_per_token=self.flops_per_token.value.data,
            weight_bytes=self.weight_bytes.value.data,
            kind=self.kind.data,
        )

    def verify_(self) -> None:
        s = self.spec
        if s.index < 0:
            raise VerifyException(f"layer index must be >= 0, got {s.index}")
        if s.flops_per_token < 0 or s.weight_bytes < 0:
            raise VerifyException("flops_per_token and weight_bytes must be >= 0")
        _check_limits(s, {"index": MAX_LAYER_INDEX, "flops_per_token": MAX_COST, "weight_bytes": MAX_COST})
        if not s.kind:
            raise VerifyException("kind must not be empty")

    @classmethod
    def parse(cls, parser: Parser) -> DenseOp:
        index = _int(parser.parse_integer(allow_boolean=False, context_msg=" (layer index)"))
        kind = parser.parse_optional_str_literal()
        if kind is None:
            kind = parser.parse_identifier(" (dense block kind)")
        props = {
            "index": index,
            "kind": StringAttr(kind),
            "flops_per_token": _parse_kw_int(parser, "flops_per_token"),
            "weight_bytes": _parse_kw_int(parser, "weight_bytes"),
        }
        return cls.create(properties=props, attributes=parser.parse_optional_attr_dict())

    def print(self, printer: Printer) -> None:
        s = self.spec
        kind = s.kind if s.kind.replace("_", "a").isalnum() else f'"{s.kind}"'
        printer.print_string(
            f" {s.index} {kind} flops_per_token {s.flops_per_token} weight_bytes {s.weight_bytes}"
        )
        if self.attributes:
            printer.print_string(" ")
            printer.print_attr_dict(self.attributes)


MoE = Dialect("moe", [LayerOp, DenseOp], [])
