"""Hugging Face config families: which fields hold the expert shape, and typed field look-ups.

`hf_import` asks this module two things: which family a `config.json` belongs to (by
`model_type`, then `architectures`) and where that family keeps its expert count, top-k and
expert width. Fields not named by a family fall back to the names common across Hub configs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fsedp_compiler.errors import FsedpError

EXPERT_FIELDS: tuple[str, ...] = (
    "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
)
TOP_K_FIELDS: tuple[str, ...] = (
    "num_experts_per_tok", "moe_top_k", "experts_per_token", "num_experts_per_token", "moe_k",
)
EXPERT_FFN_FIELDS: tuple[str, ...] = ("moe_intermediate_size", "intermediate_size")
#: Config fields that say whether the MLP is gated (gate * act(up)) or a plain up/act/down.
GATING_FIELDS: tuple[str, ...] = ("gated_linear_unit", "is_gated_act", "glu_mlp", "mlp_glu")

#: Gated-capable activations and the plain ones, as spelled in `hidden_act`.
_SILU_NAMES = ("silu", "swish", "swiglu")
_PLAIN_NAMES = ("relu", "relu2", "squared_relu", "quick_gelu")

#: `torch_dtype` / `dtype` spellings and the fsedpc dtype they import as.
DTYPES: dict[str, str] = {
    "bfloat16": "bf16", "bf16": "bf16",
    "float16": "fp16", "fp16": "fp16", "half": "fp16",
    "float32": "bf16", "fp32": "bf16", "float": "bf16",
    "int8": "int8",
    "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "float8_e4m3fnuz": "fp8", "fp8": "fp8",
}

MAX_INT = 1 << 20
"""Limit of any count or width in a config (hidden sizes, experts, heads); layers: MAX_LAYERS."""
MAX_LAYERS = 65535


class Fields:
    """One JSON object of a config and its dotted location; failed look-ups name the field."""

    def __init__(self, data: Mapping[str, object], path: str, prefix: str = "") -> None:
        self.data = data
        self.path = path
        self.prefix = prefix

    def name(self, key: str) -> str:
        return self.prefix + key

    def error(self, key: str, message: str) -> FsedpError:
        return FsedpError(message, path=self.path, field=self.name(key))

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def has(self, key: str) -> bool:
        """True when the field is present and not JSON null."""
        return self.data.get(key) is not None

    def sub(self, key: str) -> Fields | None:
        """The nested object at `key` (e.g. `text_config`), or None when absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a JSON object, got {_json_type(value)}")
        return Fields(value, self.path, self.name(key) + ".")

    def int(self, key: str, *, minimum: int = 1, maximum: int = MAX_INT) -> int:
        value = self.data.get(key)
        if value is None:
            raise self.error(key, "required field is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {_json_type(value)} {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise self.error(key, f"must be at most {maximum} (the limit), got {value}")
        return value

    def opt_int(self, key: str, default: int, *, minimum: int = 0) -> int:
        return self.int(key, minimum=minimum) if self.has(key) else default

    def int_list(self, key: str) -> list[int]:
        value = self.data.get(key)
        ints = isinstance(value, list) and all(type(v) is int for v in value)
        if not ints:
            raise self.error(key, f"must be a list of integers, got {_json_type(value)}")
        return list(value)

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_json_type(value)} {value!r}")
        return value


def lookup(sources: Sequence[Fields], keys: Sequence[str]) -> tuple[Fields, str] | None:
    """The first (object, field) among `sources` x `keys` that is present and not null."""
    for key in keys:
        for src in sources:
            if src.has(key):
                return src, key
    return None


def require_int(sources: Sequence[Fields], keys: Sequence[str], what: str,
                *, minimum: int = 1) -> tuple[Fields, str, int]:
    """The first present field of `keys` as (object, field, value); missing names `keys[0]`."""
    found = lookup(sources, keys)
    if found is None:
        others = f"; also accepted: {', '.join(keys[1:])}" if len(keys) > 1 else ""
        raise sources[0].error(keys[0], f"required field is missing ({what}{others})")
    src, key = found
    return src, key, src.int(key, minimum=minimum)


@dataclass(frozen=True)
class Family:
    """Where one model family keeps its MoE shape; unnamed fields use the common names."""

    name: str
    model_types: tuple[str, ...]
    architectures: tuple[str, ...]
    experts: tuple[str, ...] = ()
    top_k: tuple[str, ...] = ()
    expert_ffn: tuple[str, ...] = ()
    dense_ffn: str = "intermediate_size"
    """Width of the dense MLP on blocks without experts."""
    implicit_shared: bool = False
    """One always-on shared expert of the routed experts' width that no field declares (Llama 4)."""
    gated: bool | None = True
    """Whether the expert MLP is gated; None means read it from the config (generic configs)."""
    mixer: str = "attention"
    """Token mixer cost model: "attention" (GQA or MLA), "yuan" (LFA attention), "jamba" (Mamba)."""

    def expert_fields(self) -> tuple[str, ...]:
        return _merge(self.experts, EXPERT_FIELDS)

    def top_k_fields(self) -> tuple[str, ...]:
        return _merge(self.top_k, TOP_K_FIELDS)

    def expert_ffn_fields(self) -> tuple[str, ...]:
        """A family that names its expert width has no fallback: in Qwen-MoE and DeepSeek configs
        `intermediate_size` is the dense MLP's width, not the experts'."""
        return self.expert_ffn or EXPERT_FFN_FIELDS


GENERIC = Family("generic", (), (), gated=None)

FAMILIES: tuple[Family, ...] = (
    Family("mixtral", ("mixtral",), ("MixtralForCausalLM",),
           experts=("num_local_experts",), expert_ffn=("intermediate_size",)),
    Family("qwen2_moe", ("qwen2_moe",), ("Qwen2MoeForCausalLM",),
           experts=("num_experts",), expert_ffn=("moe_intermediate_size",)),
    Family("qwen3_moe", ("qwen3_moe",), ("Qwen3MoeForCausalLM",),
           experts=("num_experts",), expert_ffn=("moe_intermediate_size",)),
    Family("deepseek", ("deepseek",), ("DeepseekForCausalLM",),
           experts=("n_routed_experts",), expert_ffn=("moe_intermediate_size",)),
    Family("deepseek_v2", ("deepseek_v2",), ("DeepseekV2ForCausalLM",),
           experts=("n_routed_experts",), expert_ffn=("moe_intermediate_size",)),
    Family("deepseek_v3", ("deepseek_v3",), ("DeepseekV3ForCausalLM",),
           experts=("n_routed_experts",), expert_ffn=("moe_intermediate_size",)),
    Family("olmoe", ("olmoe",), ("OlmoeForCausalLM",),
           experts=("num_experts",), expert_ffn=("intermediate_size",)),
    Family("phimoe", ("phimoe",), ("PhiMoEForCausalLM",),
           experts=("num_local_experts",), expert_ffn=("intermediate_size",)),
    Family("gpt_oss", ("gpt_oss",), ("GptOssForCausalLM",),
           experts=("num_local_experts", "num_experts"),
           top_k=("num_experts_per_tok", "experts_per_token"), expert_ffn=("intermediate_size",)),
    Family("llama4", ("llama4", "llama4_text"),
           ("Llama4ForConditionalGeneration", "Llama4ForCausalLM"),
           experts=("num_local_experts",), expert_ffn=("intermediate_size",),
           dense_ffn="intermediate_size_mlp", implicit_shared=True),
    Family("yuan", ("yuan",), ("YuanForCausalLM",),
           experts=("moe_num_experts",), top_k=("moe_top_k",),
           expert_ffn=("ffn_hidden_size", "intermediate_size"), mixer="yuan"),
    Family("jamba", ("jamba",), ("JambaForCausalLM",),
           experts=("num_experts",), expert_ffn=("intermediate_size",), mixer="jamba"),
)

_BY_MODEL_TYPE = {mt: fam for fam in FAMILIES for mt in fam.model_types}
_BY_ARCHITECTURE = {arch: fam for fam in FAMILIES for arch in fam.architectures}


def detect_family(top: Fields, text: Fields) -> tuple[Family, str]:
    """The family of a config and the name it goes by (`model_type`, else first architecture)."""
    model_types = [mt for mt in (top.text("model_type"), text.text("model_type")) if mt]
    archs = top.raw("architectures")
    arch_names = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    label = model_types[0] if model_types else arch_names[0] if arch_names else "?"
    for mt in model_types:
        if mt in _BY_MODEL_TYPE:
            return _BY_MODEL_TYPE[mt], label
    for arch in arch_names:
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch], label
    return GENERIC, label


def parse_activation(sources: Sequence[Fields], family: Family) -> tuple[str, str | None]:
    """The fsedpc activation ("swiglu" = gated 3-matrix MLP, "gelu" = plain 2-matrix) and a note.

    silu/swish MLPs are gated in every known family; a gelu MLP is gated only when the family
    or a gating field says so. The cost model only sees the matrix count, so a gated GELU
    (GeGLU) imports as "swiglu" and a plain ReLU as "gelu", each with a note.
    """
    found = lookup(sources, ("hidden_act", "hidden_activation", "activation_function"))
    act = "silu"
    if found is not None:
        src, key = found
        act = (src.text(key) or "silu").lower()
    base = _activation_base(act)
    if base is None:
        src, key = found if found is not None else (sources[0], "hidden_act")
        raise src.error(key, f"unsupported activation '{act}' (expected silu/swish, gelu* or relu)")
    gated = family.gated
    flag = lookup(sources, GATING_FIELDS)
    if flag is not None:
        gated = bool(flag[0].raw(flag[1]))
    elif family is GENERIC:
        proj = lookup(sources, ("feed_forward_proj",))
        gated_proj = proj is not None and str(proj[0].raw(proj[1])).startswith("gated-")
        gated = base == "silu" or gated_proj
    if gated:
        exact = base == "silu"
        return "swiglu", None if exact else f"gated {act} MLP imported as 'swiglu' (3 matrices)"
    exact = act.startswith("gelu")
    return "gelu", None if exact else f"plain {act} MLP imported as 'gelu' (2 matrices)"


def _activation_base(act: str) -> str | None:
    if act in _SILU_NAMES:
        return "silu"
    if act.startswith("gelu") or act in _PLAIN_NAMES:
        return "gelu"
    return None


def parse_dtype(sources: Sequence[Fields]) -> tuple[str, str | None]:
    """The weight dtype from `torch_dtype`/`dtype` (default bf16), and a note if it is assumed."""
    found = lookup(sources, ("torch_dtype", "dtype"))
    if found is None:
        return "bf16", "no torch_dtype/dtype field: weights assumed bf16"
    src, key = found
    raw = src.text(key) or ""
    spelled = raw.removeprefix("torch.").lower()
    if spelled not in DTYPES:
        known = ", ".join(sorted(DTYPES))
        raise src.error(key, f"unsupported dtype '{raw}' (expected one of {known})")
    dtype = DTYPES[spelled]
    if spelled in ("float32", "fp32", "float"):
        return dtype, f"{src.name(key)} is {raw}: weights imported as bf16, as they are served"
    return dtype, None


def _merge(first: tuple[str, ...], rest: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(k for k in rest if k not in first)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
