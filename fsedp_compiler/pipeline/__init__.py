"""The compile driver around the passes: the IR helpers, per-layer context, the DRAM layout, `--strategy auto`."""
