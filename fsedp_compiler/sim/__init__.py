"""The bundled chiplet simulator: runs the instruction streams `fsedpc compile` emits.

`loader` reads and checks an output directory, `program` turns each chiplet's instructions into
the work of every layer step (validating it against the stream table), `engine` times it on the
machine model (`fsedp_compiler.streaming.execute`, the same cost model as the scheduler),
`functional` carries real numbers, `metrics` and `timeline` report.
"""
