"""`fsedpc inspect MODEL.mlir`: sizes and parameter counts of a `moe` model."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from fsedp_compiler.console import human_bytes, human_count, make_console
from fsedp_compiler.inputs.model import ModelSpec
from fsedp_compiler.ir.modules import load_model_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a moe model (layers, experts, sizes, parameters)",
        description="Summarise a moe model: per MoE layer its experts, top-k and sizes, the bytes of "
        "one expert and of the layer at the model's dtype, and total and active parameters.",
    )
    p.add_argument("model", metavar="MODEL.mlir", help="input module ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.set_defaults(func=run)


def model_summary(spec: ModelSpec) -> dict[str, object]:
    """The JSON form of `inspect`: the documented keys first, then derived sizes."""
    return {
        "name": spec.name,
        "num_layers": spec.num_layers,
        "moe_layers": [
            {
                "index": m.index,
                "d_model": m.d_model,
                "d_ffn": m.d_ffn,
                "num_experts": m.num_experts,
                "top_k": m.top_k,
                "num_shared_experts": m.num_shared,
                "d_ffn_shared": m.d_ffn_shared,
                "activation": m.activation,
                "dtype": m.dtype,
                "expert_bytes": m.expert_bytes,
                "layer_bytes": m.layer_bytes,
            }
            for m in spec.moe
        ],
        "dense_layers": [
            {"index": d.index, "kind": d.kind, "flops_per_token": d.flops_per_token, "weight_bytes": d.weight_bytes}
            for d in spec.dense
        ],
        "total_params": spec.total_params,
        "active_params": spec.active_params,
    }


def run(args: argparse.Namespace) -> int:
    spec = load_model_spec(args.model)
    if args.json:
        print(json.dumps(model_summary(spec), indent=2))
        return 0
    console = make_console()
    console.print(
        f"[bold]{spec.name}[/bold]: {spec.num_layers} decoder layers, {len(spec.moe)} MoE layers; "
        f"{human_count(spec.total_params)} parameters, {human_count(spec.active_params)} active per token"
    )
    table = Table()
    for col in ("layers", "experts", "top-k", "shared", "d_model", "d_ffn", "act", "dtype", "bytes/expert", "bytes/layer"):
        table.add_column(col, justify="left" if col in ("layers", "act", "dtype") else "right")
    # consecutive identical layers share one row, as in most models every MoE layer is alike
    groups: list[list] = []
    for m in spec.moe:
        key = (m.num_experts, m.top_k, m.num_shared, m.d_ffn_shared, m.d_model, m.d_ffn, m.activation, m.dtype)
        if groups and groups[-1][0] == key and groups[-1][2] == m.index - 1:
            groups[-1][2] = m.index
        else:
            groups.append([key, m.index, m.index, m])
    for _, first, last, m in groups:
        shared = f"{m.num_shared} x {m.d_ffn_shared}" if m.num_shared else "-"
        table.add_row(
            f"{first}" if first == last else f"{first}-{last}",
            str(m.num_experts), str(m.top_k), shared, str(m.d_model), str(m.d_ffn),
            m.activation, m.dtype, human_bytes(m.expert_bytes), human_bytes(m.layer_bytes),
        )
    console.print(table)
    return 0
