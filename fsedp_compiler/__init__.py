"""fsedpc: compile Mixture-of-Experts layers onto multi-chiplet accelerators with FSE-DP."""

__version__ = "0.1.0"
