"""Import a Hugging Face `config.json` as a `ModelSpec`: expert shapes plus per-block dense cost.

Every decoder block becomes one `DenseSpec` (its token mixer, plus the dense MLP when the block
has no experts) and each MoE block also a `MoeLayerSpec`. Dense costs count linear weights
only, at 2 FLOPs per weight per token; embeddings, norms, biases and the LM head are left out,
and the router belongs to `MoeLayerSpec`. Token mixers are costed as follows (d = hidden_size):

- attention: q and o are d x heads*head_dim, k and v are d x kv_heads*head_dim (GQA);
- MLA (DeepSeek-V2/V3): q is d x heads*(nope+rope), or the q_lora_rank down/up pair when
  q_lora_rank is set; kv_a is d x (kv_lora_rank+rope), kv_b is kv_lora_rank x heads*(nope+v),
  o is heads*v x d;
- Yuan 2.0 localized-filtering attention: q, k, v and o through attention_projection_size,
  plus the two kernel-2 filtering convolutions (d -> d/2 -> d, i.e. 2 d^2 weights);
- Mamba (Jamba's non-attention blocks), an approximation: in_proj (d x 2 d_inner), the
  depthwise conv (d_inner x d_conv), x_proj (d_inner x (dt_rank + 2 d_state)), dt_proj
  (dt_rank x d_inner), out_proj (d_inner x d) and the A and D state weights, all at 2 FLOPs
  per weight; the selective scan's further element-wise work (a few ops per state) is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.files.fileio import STDIN_NAME, display_name, read_text
from fsedp_compiler.inputs.hf_families import (
    EXPERT_FIELDS,
    GENERIC,
    MAX_LAYERS,
    Family,
    Fields,
    detect_family,
    lookup,
    parse_activation,
    parse_dtype,
    require_int,
)
from fsedp_compiler.files.jsonio import load_json
from fsedp_compiler.inputs.model import MATRICES, DenseSpec, ModelSpec, MoeLayerSpec

#: transformers' JambaConfig defaults for the layer-placement fields.
JAMBA_DEFAULTS: dict[str, int] = {
    "expert_layer_period": 2,
    "expert_layer_offset": 1,
    "attn_layer_period": 8,
    "attn_layer_offset": 4,
}


def import_hf_config(path: str, layers: int | None = None, *, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face `config.json` (`-`: standard input) and describe the model (first
    `layers` blocks if given)."""
    text = read_text(path, "config file")
    path = display_name(path)
    cfg = load_json(text, path)
    if not isinstance(cfg, dict):
        raise FsedpError("expected a JSON object at the top level of a config.json", path=path)
    return spec_from_hf_dict(cfg, path, layers, name)


def spec_from_hf_dict(cfg: Mapping[str, object], path: str, layers: int | None = None,
                      name: str | None = None) -> ModelSpec:
    """The `ModelSpec` of a parsed config; `path` is used in messages and as the fallback name."""
    if layers is not None and layers < 1:
        raise FsedpError(f"--layers must be at least 1, got {layers}", path=path)
    top = Fields(cfg, path)
    text = _text_fields(top)
    family, label = detect_family(top, text)
    moe_src = _moe_sources(text, family)
    if family is GENERIC and lookup(moe_src, EXPERT_FIELDS) is None:
        fields = ", ".join(EXPERT_FIELDS)
        raise FsedpError(f"unknown model family '{label}': no expert-count field ({fields})",
                         path=path)

    num_layers = text.int("num_hidden_layers", maximum=MAX_LAYERS)
    expert, notes = _expert_shape(top, text, moe_src, family)
    moe_mask = _moe_layer_mask(text, num_layers, family)
    kept = num_layers if layers is None else min(layers, num_layers)
    if not any(moe_mask):
        raise FsedpError("the config places experts on none of its layers", path=path)
    if not any(moe_mask[:kept]):
        first = moe_mask.index(True)
        raise FsedpError(f"the first {kept} layers have no experts (the first MoE layer is "
                         f"{first}); keep at least {first + 1} layers", path=path)

    dense = _dense_blocks(text, family, expert, moe_mask[:kept])
    moe = tuple(replace(expert, index=i) for i in range(kept) if moe_mask[i])
    notes += _ignored_notes(top, text, family)
    extra = {"hf_model_type": label, "family": family.name}
    if notes:
        extra["notes"] = "; ".join(notes)
    return ModelSpec(name=_model_name(cfg, path, name), num_layers=kept, dense=dense, moe=moe,
                     source=f"huggingface:{label}", extra=extra)


def _expert_shape(top: Fields, text: Fields, moe_src: Sequence[Fields],
                  family: Family) -> tuple[MoeLayerSpec, list[str]]:
    """The expert FFN every MoE block shares (as index 0), and notes on what was assumed."""
    d_model = text.int("hidden_size")
    *_, num_experts = require_int(moe_src, family.expert_fields(), "routed expert count")
    k_src, k_key, top_k = require_int(moe_src, family.top_k_fields(), "experts per token")
    if top_k > num_experts:
        raise k_src.error(k_key, f"top-k {top_k} exceeds the {num_experts} routed experts")
    *_, d_ffn = require_int(moe_src, family.expert_ffn_fields(), "expert FFN width")
    num_shared, d_ffn_shared = _shared_experts(moe_src, family, d_ffn)
    activation, act_note = parse_activation(moe_src, family)
    dtype, dtype_note = parse_dtype([text, top])
    spec = MoeLayerSpec(index=0, d_model=d_model, d_ffn=d_ffn, num_experts=num_experts,
                        top_k=top_k, num_shared=num_shared, d_ffn_shared=d_ffn_shared,
                        activation=activation, dtype=dtype)
    return spec, [n for n in (dtype_note, act_note) if n]


def _dense_blocks(f: Fields, family: Family, expert: MoeLayerSpec,
                  moe_mask: Sequence[bool]) -> tuple[DenseSpec, ...]:
    """One `DenseSpec` per kept block: its token mixer, plus the dense MLP if it has no experts."""
    d = expert.d_model
    mixers = _mixer_kinds(f, len(moe_mask), family)
    mixer_params = {kind: _mixer_params(kind, f, d, family) for kind in set(mixers)}
    mlp = 0 if all(moe_mask) else MATRICES[expert.activation] * d * f.int(family.dense_ffn)
    blocks = []
    for i, (mixer, has_experts) in enumerate(zip(mixers, moe_mask)):
        params = mixer_params[mixer] + (0 if has_experts else mlp)
        blocks.append(DenseSpec(index=i, flops_per_token=2 * params,
                                weight_bytes=params * expert.dtype_bytes,
                                kind=mixer if has_experts else f"{mixer}+mlp"))
    return tuple(blocks)


def _moe_sources(text: Fields, family: Family) -> list[Fields]:
    """Where to look for expert fields: Yuan-style `moe_config` first when it holds them."""
    moe_cfg = text.sub("moe_config")
    if moe_cfg is not None and (family.name == "yuan" or lookup([moe_cfg], EXPERT_FIELDS)):
        return [moe_cfg, text]
    return [text]


def _text_fields(top: Fields) -> Fields:
    """The object holding the language model's fields: `text_config` in multimodal wrappers."""
    sub = top.sub("text_config")
    if sub is not None and not top.has("hidden_size"):
        return sub
    return top


def _moe_layer_mask(f: Fields, n: int, family: Family) -> list[bool]:
    """Which of the `n` blocks carry experts, from every placement field the config has.

    Each rule is the one its family's modeling code applies, and they combine by "and":
    Llama 4 `moe_layers` / `interleave_moe_layer_step`, Qwen `decoder_sparse_step` and
    `mlp_only_layers`, DeepSeek `first_k_dense_replace` and `moe_layer_freq`, Jamba
    `expert_layer_period` / `expert_layer_offset`.
    """
    mask = [True] * n
    if f.has("moe_layers"):
        chosen = set(f.int_list("moe_layers"))
        mask = [i in chosen for i in range(n)]
    elif f.has("interleave_moe_layer_step"):
        step = f.int("interleave_moe_layer_step")
        mask = [(i + 1) % step == 0 for i in range(n)]
    if f.has("decoder_sparse_step"):
        step = f.int("decoder_sparse_step")
        mask = [m and (i + 1) % step == 0 for i, m in enumerate(mask)]
    if f.has("mlp_only_layers"):
        dense_only = set(f.int_list("mlp_only_layers"))
        mask = [m and i not in dense_only for i, m in enumerate(mask)]
    if f.has("first_k_dense_replace"):
        k = f.int("first_k_dense_replace", minimum=0)
        mask = [m and i >= k for i, m in enumerate(mask)]
    if isinstance(f.raw("moe_layer_freq"), list):
        per_layer = f.int_list("moe_layer_freq")
        if len(per_layer) < n:
            raise f.error("moe_layer_freq", f"lists {len(per_layer)} layers but the model has {n}")
        mask = [m and bool(per_layer[i]) for i, m in enumerate(mask)]
    elif f.has("moe_layer_freq"):
        freq = f.int("moe_layer_freq")
        mask = [m and i % freq == 0 for i, m in enumerate(mask)]
    if family.mixer == "jamba" or f.has("expert_layer_period"):
        period = f.opt_int("expert_layer_period", JAMBA_DEFAULTS["expert_layer_period"], minimum=1)
        offset = f.opt_int("expert_layer_offset", JAMBA_DEFAULTS["expert_layer_offset"])
        mask = [m and i % period == offset for i, m in enumerate(mask)]
    return mask


def _mixer_kinds(f: Fields, n: int, family: Family) -> list[str]:
    """The token mixer of each block: "attention", or "mamba" on Jamba's non-attention blocks."""
    if family.mixer != "jamba":
        return ["attention"] * n
    period = f.opt_int("attn_layer_period", JAMBA_DEFAULTS["attn_layer_period"], minimum=1)
    offset = f.opt_int("attn_layer_offset", JAMBA_DEFAULTS["attn_layer_offset"])
    return ["attention" if i % period == offset else "mamba" for i in range(n)]


def _mixer_params(kind: str, f: Fields, d: int, family: Family) -> int:
    """Weights of one block's token mixer."""
    if kind == "mamba":
        return _mamba_params(f, d)
    if f.has("kv_lora_rank"):
        return _mla_params(f, d)
    if family.mixer == "yuan":
        return _yuan_attention_params(f, d)
    return _attention_params(f, d)


def _attention_params(f: Fields, d: int) -> int:
    """q, k, v and o projections of multi-head / grouped-query attention."""
    heads = f.int("num_attention_heads")
    kv_heads = f.opt_int("num_key_value_heads", heads, minimum=1)
    head_dim = f.opt_int("head_dim", d // heads, minimum=1)
    return 2 * d * heads * head_dim + 2 * d * kv_heads * head_dim


def _mla_params(f: Fields, d: int) -> int:
    """DeepSeek multi-head latent attention: low-rank q (optional) and kv projections, and o."""
    heads = f.int("num_attention_heads")
    kv_lora = f.int("kv_lora_rank")
    nope, rope, v = f.int("qk_nope_head_dim"), f.int("qk_rope_head_dim"), f.int("v_head_dim")
    q_dim = heads * (nope + rope)
    # q_lora_rank null (V2-Lite) means a full-rank q_proj, else q_a (d x r) then q_b (r x q_dim).
    q = f.int("q_lora_rank") * (d + q_dim) if f.has("q_lora_rank") else d * q_dim
    kv = d * (kv_lora + rope) + kv_lora * heads * (nope + v)
    return q + kv + heads * v * d


def _yuan_attention_params(f: Fields, d: int) -> int:
    """Yuan 2.0 attention: projections through attention_projection_size plus LFA convolutions."""
    proj = f.opt_int("attention_projection_size", d, minimum=1)
    filtering = 0 if f.raw("use_shareqk") else 2 * d * d
    return 4 * d * proj + filtering


def _mamba_params(f: Fields, d: int) -> int:
    """An approximate Mamba mixer (see the module docstring); defaults as in JambaConfig."""
    expand = f.opt_int("mamba_expand", 2, minimum=1)
    d_state = f.opt_int("mamba_d_state", 16, minimum=1)
    d_conv = f.opt_int("mamba_d_conv", 4, minimum=1)
    inner = expand * d
    auto_rank = f.raw("mamba_dt_rank") in (None, "auto")
    dt_rank = math.ceil(d / 16) if auto_rank else f.int("mamba_dt_rank")
    projections = d * 2 * inner + inner * (dt_rank + 2 * d_state) + dt_rank * inner + inner * d
    return projections + inner * d_conv + inner * d_state + inner


def _shared_experts(src: Sequence[Fields], family: Family, d_ffn: int) -> tuple[int, int]:
    """(count, width) of the always-on shared experts.

    DeepSeek's `n_shared_experts` are each as wide as a routed expert; Qwen2-MoE's
    `shared_expert_intermediate_size` is one shared expert of that width; Llama 4 has one
    shared expert of the routed width that no field declares.
    """
    if family.implicit_shared:
        return 1, d_ffn
    count = lookup(src, ("n_shared_experts", "num_shared_experts"))
    width = lookup(src, ("shared_expert_intermediate_size", "moe_shared_expert_intermediate_size"))
    n = count[0].int(count[1], minimum=0) if count else None
    size = width[0].int(width[1], minimum=0) if width else None
    if n is None:
        return (1, size) if size else (0, 0)
    if n == 0:
        return 0, 0
    return n, size if size else d_ffn


def _ignored_notes(top: Fields, text: Fields, family: Family) -> list[str]:
    """What the spec leaves out that a reader of the config might expect it to include."""
    notes = []
    quant = top.sub("quantization_config") or text.sub("quantization_config")
    if quant is not None:
        method = quant.raw("quant_method")
        notes.append(f"quantization_config ({method}) ignored: weights counted at the torch_dtype")
    if text.has("num_nextn_predict_layers") and text.raw("num_nextn_predict_layers"):
        notes.append("multi-token-prediction layers (num_nextn_predict_layers) not included")
    if family.mixer == "jamba":
        notes.append("Mamba blocks costed approximately (projections, conv, A and D; scan ignored)")
    if family.mixer == "yuan":
        notes.append("Yuan LFA attention costed as its projections plus 2*d^2 filtering weights")
    return notes


def _model_name(cfg: Mapping[str, object], path: str, name: str | None) -> str:
    """`name`, else the last part of a hub id in `_name_or_path` (not a local absolute path),
    else the file's (or its folder's) name."""
    if name:
        return name
    hub_name = cfg.get("_name_or_path")
    if isinstance(hub_name, str) and hub_name.strip("/\\") and not hub_name.startswith(("/", "\\", ".")):
        return hub_name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if path == STDIN_NAME:
        raise FsedpError("the config has no _name_or_path and standard input has no file name: "
                         "give the model a name", path=path, field="--name")
    file = Path(path)
    if file.name == "config.json" and file.parent.name:
        return file.parent.name
    return file.stem
