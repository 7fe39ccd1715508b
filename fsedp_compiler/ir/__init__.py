"""The IR between the passes: reading, verifying and writing modules, what each MoE layer's ops say, instruction rows, the DRAM layout."""
