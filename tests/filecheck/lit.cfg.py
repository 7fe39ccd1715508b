"""lit configuration: FileCheck tests of fsedpc on .mlir files, run with `lit tests/filecheck`."""

import os
import sys

import lit.formats

config.name = "fsedpc"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["inputs", "lit.cfg.py"]

repo = os.path.dirname(os.path.dirname(config.test_source_root))
# `fsedpc` and `filecheck` come from the venv that runs lit.
config.environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
config.environment["COLUMNS"] = "200"
config.environment["FSEDPC_VERIFY_EACH"] = "1"  # compile verifies after every pass in tests
config.environment["FSEDPC_DEBUG"] = "1"  # a bug is a traceback in tests, not a one-line exit 1
config.substitutions.append(("%examples", os.path.join(repo, "examples")))
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "inputs")))
