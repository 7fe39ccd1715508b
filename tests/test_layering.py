"""Architecture, enforced: the import-linter contracts of pyproject.toml hold.

import-linter walks a package's directory, and our top-level `dialects/`, `passes/` and
`backends/` are mapped into `fsedp_compiler` only at install time (setuptools `package-dir`), so
the check runs on a copy of the installed layout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover (Python 3.10)
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def installed_layout(dest: Path) -> Path:
    """Copy the Python sources as pip installs them (package-dir mapping) under `dest`."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    for package in config["packages"]:
        parts = package.split(".")
        source = next((REPO / mapping[".".join(parts[:k])] / Path(*parts[k:])
                       for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in mapping), REPO / Path(*parts))
        target = dest / Path(*parts)
        target.mkdir(parents=True, exist_ok=True)
        for f in source.glob("*.py"):
            shutil.copy2(f, target / f.name)
    return dest


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True)


def test_import_contracts(tmp_path: Path) -> None:
    r = lint_imports(installed_layout(tmp_path / "site"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout.lower()


@pytest.mark.parametrize("module, wrong", [
    ("dialects/moe.py", "fsedp_compiler.passes.registry"),          # a dialect above its passes
    ("dialects/fsedp.py", "fsedp_compiler.fsedp.scheduler"),        # a dialect importing the scheduler
    ("sim/run.py", "fsedp_compiler.ir.layers"),                     # the machine reading the IR
    ("inputs/target.py", "fsedp_compiler.fsedp.shardplan"),         # an input format above FSE-DP
])
def test_a_new_wrong_arrow_breaks_a_contract(tmp_path: Path, module: str, wrong: str) -> None:
    root = installed_layout(tmp_path / "site")
    path = root / "fsedp_compiler" / module
    path.write_text(path.read_text() + f"\nimport {wrong}  # noqa\n")
    r = lint_imports(root)
    assert r.returncode != 0 and "broken" in r.stdout.lower(), r.stdout
