"""Backends: the per-chiplet instruction set (isa.py) and its emission (emit.py)."""
