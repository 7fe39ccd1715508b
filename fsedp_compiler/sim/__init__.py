"""The machine: executes the instruction streams `fsedpc compile` emits, and nothing else.

`loader` reads a program directory as untrusted input (`manifest` is program.json's schema);
`steps` cuts the programs into phases between barriers and decodes each into engine work with
located checks; `firmware` is the dynamic-mode controller (the scheduler, trajectories,
when/where); `stream_engine` and `task_engine` run a step's engines event by event; `data` carries
the numbers in functional mode; `run` drives the phases and collects metrics; `timeline` writes
the Chrome trace. It imports no pass, dialect, baseline planner, trajectory code or xDSL: the one
compiler function it calls is `scheduler.schedule`, as a controller's firmware would.
"""
