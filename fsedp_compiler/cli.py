"""`fsedpc`: the command-line driver; each sub-command lives in `fsedp_compiler.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from collections.abc import Sequence

from fsedp_compiler import __version__
from fsedp_compiler.commands import COMMANDS
from fsedp_compiler.errors import EXIT_USER_ERROR, FsedpError

EXIT_INTERNAL_ERROR = 1
DEBUG_ENV = "FSEDPC_DEBUG"
"""Set (to anything but "" or "0") to re-raise unexpected exceptions with their traceback (tests do)."""


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def internal_error_message(argv: Sequence[str], err: BaseException) -> str:
    """The one line an unexpected exception becomes: the command, its input, the advice to report it."""
    what = f"{type(err).__name__}: {err}".strip().splitlines()[0][:300] if str(err) else type(err).__name__
    return (f"fsedpc: internal error in `fsedpc {shlex.join(argv)}`: {what} -- this is a bug in fsedpc, "
            f"not in your input; please report it to the fsedpc maintainers (issue tracker) with this "
            f"command line and its input files ({DEBUG_ENV}=1 shows the traceback)")


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
    """Run one `fsedpc` command: 0 on success, 2 for bad input, 3 for a deadlock, 130 on Ctrl-C and
    1 for a bug (an unexpected exception, reported in one line; FSEDPC_DEBUG=1 re-raises it)."""
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
    except Exception as err:  # a bug: one line and exit 1, or the traceback when debugging
        if _debugging():
            raise
        print(internal_error_message(argv, err), file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
