"""One module per `fsedpc` sub-command; each exposes `register(subparsers)`.

`register` adds the sub-command's parser and sets `func=run` on it; `run(args)` returns the
exit code and raises `FsedpError` for bad input (reported by `cli.main`). `COMMANDS` names each
command's module and one-line help, so the driver imports only the module of the command it runs.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "import-hf": ("import_hf", "import a Hugging Face config.json as a moe module"),
    "inspect": ("inspect", "summarise a moe model (layers, experts, sizes, parameters)"),
    "targets": ("targets", "list chiplet-system presets and their R1 virtual rings"),
    "trace": ("trace", "make or summarise expert-routing traces (.npz)"),
    "opt": ("opt", "run a pass pipeline on an MLIR file (xdsl-opt style)"),
    "compile": ("compile", "compile a moe model to per-chiplet instruction streams"),
    "simulate": ("simulate", "simulate a compiled program (timing, optionally functional)"),
    "asm": ("asm", "reassemble a program directory's edited .fsa files into .bin"),
    "disasm": ("asm", "print an ISA binary (.bin) as text"),
    "crosscheck": ("crosscheck", "verify the scheduler with CP-SAT and measure its optimality gap"),
    "bench": ("bench", "compare FSE-DP with the baselines on the same routing"),
    "sweep": ("sweep", "run a design-space sweep (models x targets x parameters x strategies) or report on one"),
}
"""command -> (module in fsedp_compiler.commands, help)"""
