"""The CP-SAT cross-check of the lightweight scheduler: models, bounds, relaxations, reports."""
