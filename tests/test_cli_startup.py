"""Start-up: `fsedpc --version` and `--help` import nothing heavy; a command imports its own module only."""

from __future__ import annotations

import subprocess
import sys


def test_cli_start_up_imports_only_the_command_it_runs() -> None:
    """`fsedpc --version` and `--help` import no sub-command, xDSL, numpy or networkx."""
    code = ("import sys, contextlib, io; from fsedp_compiler.cli import main\n"
            "for argv in (['--version'], ['--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try: main(argv)\n"
            "        except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('xdsl', 'numpy', 'networkx', 'rich') "
            "or m.startswith('fsedp_compiler.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
