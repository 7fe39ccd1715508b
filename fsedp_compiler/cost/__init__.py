"""The cost model (durations and energies) and the compiler's step estimator built on it."""
