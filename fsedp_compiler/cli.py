"""`fsedpc`: the command-line driver; each sub-command lives in `fsedp_compiler.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .commands import COMMANDS
from .errors import EXIT_USER_ERROR, FsedpError


class _Parser(argparse.ArgumentParser):
    """argparse with our exit code (2) and message shape for usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `fsedpc` parser; only `command`'s module is imported (all of them when None), the
    others get a stub with their help line, so start-up stays fast."""
    parser = _Parser(
        prog="fsedpc",
        description="Compile MoE layers onto multi-chiplet accelerators (FSE-DP) and simulate them.",
    )
    parser.add_argument("--version", action="version", version=f"fsedpc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    wanted = {module for name, (module, _) in COMMANDS.items() if command is None or name == command}
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        if module in wanted:
            importlib.import_module(f"fsedp_compiler.commands.{module}").register(subparsers)
    for name, (module, help_line) in COMMANDS.items():
        if module not in wanted:
            subparsers.add_parser(name, help=help_line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None if command else "").parse_args(argv)
    try:
        code = args.func(args)
    except BrokenPipeError:  # `fsedpc ... | head`
        return 0
    except FsedpError as err:
        print(f"fsedpc: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a file-system problem with a path the user gave (permissions, not a directory)
        where = f"{err.filename}: " if err.filename else ""
        print(f"fsedpc: {where}error: {err.strerror or err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fsedpc: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
