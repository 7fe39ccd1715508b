"""One module per `fsedpc` sub-command; each exposes `register(subparsers)`.

`register` adds the sub-command's parser and sets `func=run` on it; `run(args)` returns the
exit code and raises `FsedpError` for bad input (reported by `cli.main`).
"""

COMMANDS: tuple[str, ...] = (
    "import_hf",
    "inspect",
    "targets",
    "trace",
    "opt",
    "compile",
    "simulate",
    "asm",
    "crosscheck",
    "bench",
    "sweep",
)
