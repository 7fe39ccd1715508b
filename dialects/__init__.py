"""IRDL dialects of fsedpc: `moe` (the model), `chiplet` (the hardware), later `fsedp`, `dataflow`."""
