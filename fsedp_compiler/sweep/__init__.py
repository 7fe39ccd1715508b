"""`fsedpc sweep`: design-space sweeps over models, targets and bench parameters.

spec.py (the TOML schema) and locate.py (TOML lines of its fields) → points.py (the grid expanded
into self-contained points with content hashes) → executors.py (a local process pool or Ray
tasks) running worker.py (one point's bench row) → store.py (the append-only JSONL results) with
progress.py; report.py and figures.py read the store.
"""
