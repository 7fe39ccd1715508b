"""The MoE model spec (what a `moe` module holds) and its conversion to and from IR.

A decoder block is one `moe.dense` (attention, plus the dense MLP on blocks without
experts) and, on MoE blocks, one `moe.layer` with the same index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Bytes per weight element for each supported dtype.
DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "int8": 1, "fp8": 1}
ACTIVATIONS: tuple[str, ...] = ("swiglu", "gelu")
#: Weight matrices per expert: SwiGLU has gate, up and down; GELU has up and down.
MATRICES: dict[str, int] = {"swiglu": 3, "gelu": 2}


@dataclass(frozen=True)
class MoeLayerSpec:
    """The expert FFN of one decoder block: routed experts plus optional shared experts."""

    index: int
    d_model: int
    d_ffn: int
    num_experts: int
    top_k: int
    num_shared: int = 0
    d_ffn_shared: int = 0
    activation: str = "swiglu"
    dtype: str = "bf16"

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def expert_params(self) -> int:
        """Parameters of one routed expert."""
        return MATRICES[self.activation] * self.d_model * self.d_ffn

    @property
    def shared_expert_params(self) -> int:
        """Parameters of one shared expert (0 when there are none)."""
        return MATRICES[self.activation] * self.d_model * self.d_ffn_shared if self.num_shared else 0

    @property
    def expert_bytes(self) -> int:
        return self.expert_params * self.dtype_bytes

    @property
    def router_params(self) -> int:
        return self.d_model * self.num_experts

    @property
    def total_params(self) -> int:
        return (
            self.num_experts * self.expert_params
            + self.num_shared * self.shared_expert_params
            + self.router_params
        )

    @property
    def active_params(self) -> int:
        """Parameters one token touches: its top-k experts, the shared ones and the router."""
        return (
            self.top_k * self.expert_params
            + self.num_shared * self.shared_expert_params
            + self.router_params
        )

    @property
    def layer_bytes(self) -> int:
        return self.total_params * self.dtype_bytes


@dataclass(frozen=True)
class DenseSpec:
    """The non-MoE part of a decoder block as a per-token cost (attention, dense MLP, norms)."""

    index: int
    flops_per_token: int
    weight_bytes: int
    kind: str = "attention"

    @property
    def params(self) -> int:
        """Weights of the block's linear layers: each costs 2 FLOPs (one MAC) per token."""
        return self.flops_per_token // 2


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: its name, decoder block count and the blocks kept in the module."""

    name: str
    num_layers: int
    dense: tuple[DenseSpec, ...] = ()
    moe: tuple[MoeLayerSpec, ...] = ()
    source: str = ""
    """Where the spec came from (e.g. the HF `model_type`), for humans only."""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def moe_layers(self) -> tuple[MoeLayerSpec, ...]:
        return self.moe

    def moe_layer(self, index: int) -> MoeLayerSpec:
        for layer in self.moe:
            if layer.index == index:
                return layer
        raise KeyError(index)

    @property
    def total_params(self) -> int:
        return sum(m.total_params for m in self.moe) + sum(d.params for d in self.dense)

    @property
    def active_params(self) -> int:
        return sum(m.active_params for m in self.moe) + sum(d.params for d in self.dense)
