"""`fsedpc bench`: running strategies on one workload, comparing them fairly, plotting."""
