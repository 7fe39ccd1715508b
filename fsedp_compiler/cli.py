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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fsedpc",
        description="Compile MoE layers onto multi-chiplet accelerators (FSE-DP) and simulate them.",
    )
    parser.add_argument("--version", action="version", version=f"fsedpc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"fsedp_compiler.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
