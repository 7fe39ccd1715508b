"""fsedpc passes: one module per pass, each a `ModulePass` registered in `registry.py`."""
