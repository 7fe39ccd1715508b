"""`fsedpc import-hf`: turn a Hugging Face `config.json` into a `moe` module."""

from __future__ import annotations

import argparse



def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `import-hf CONFIG.json [-o model.mlir] [--layers N] [--name NAME]`."""
    parser = subparsers.add_parser(
        "import-hf",
        help="import a Hugging Face config.json as a moe module",
        description="Read a Hugging Face config.json (Mixtral, Qwen-MoE, DeepSeek, OLMoE, Phi-MoE, "
        "GPT-OSS, Llama 4, Yuan 2.0-M32, Jamba, or any config with the common MoE field names) and "
        "write the equivalent moe module: one moe.dense per decoder block and one moe.layer per "
        "MoE block.",
    )
    parser.add_argument("config", metavar="CONFIG.json", help="the model's config.json ('-' for stdin)")
    parser.add_argument("-o", "--output", default="-", metavar="model.mlir",
                        help="write here (atomically) instead of stdout ('-')")
    parser.add_argument("--layers", type=int, metavar="N",
                        help="keep only the first N decoder blocks")
    parser.add_argument("--name",
                        help="model name (default: _name_or_path, else the file or folder name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the config and print the module, or write it atomically with `-o`."""
    from fsedp_compiler.files.fileio import check_output_path, write_output
    from fsedp_compiler.inputs.hf_import import import_hf_config

    check_output_path(args.output)  # before any work
    spec = import_hf_config(args.config, args.layers, name=args.name)
    from fsedp_compiler.ir.modules import module_text_from_spec  # lazy: keeps `fsedpc --help` free of xDSL start-up

    write_output(args.output, module_text_from_spec(spec))
    return 0
