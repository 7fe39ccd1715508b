"""Seeded mutation fuzzing of every input format through the CLI (issue 14).

`corpus(dir)` writes one valid seed per format; `cases(corpus, n, seed)` derives `n` mutated
inputs, each with the `fsedpc` commands that read it and whether it is invalid by construction
(or, for the deadlock kind, must deadlock: exit 3 with a report naming the chiplets);
`run_case` runs them in a forked child (time limit, memory cap, fresh output directory) and
classifies the outcome. `python tests/fuzz.py` (`make fuzz`) prints the counts.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import ANY, DEADLOCK, INVALID, KINDS, Case, cases, make_case, seed_case  # noqa: E402

__all__ = ["ANY", "DEADLOCK", "INVALID", "KINDS", "Case", "cases", "make_case", "seed_case", "corpus", "preimport",
           "run_case", "describe", "tally", "main"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


# --------------------------------------------------------------------------- seeds


SAMPLE_MLIR = """builtin.module attributes {moe.model = "sample", moe.num_layers = 3 : i64} {
  moe.dense 0 attention flops_per_token 32768 weight_bytes 32768
  moe.dense 1 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 1 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 2 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 2 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
}
"""

TINY_MLIR = """builtin.module attributes {moe.model = "tiny", moe.num_layers = 2 : i64} {
  moe.dense 0 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 1 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 1 experts 8 top_k 2 d_model 32 d_ffn 128 gelu int8
}
"""


def corpus(root: Path) -> Path:
    """Write the valid seeds into `root` (a model, a target, a trace, a routing dump, an HF config,
    a static and a dynamic program directory; the sweep spec is made from these); returns `root`."""
    from fsedp_compiler.cli import main
    from fsedp_compiler.inputs.trace_synth import synth_trace
    from fsedp_compiler.inputs.traces import save_trace
    from fsedp_compiler.ir.modules import load_model_spec

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.mlir").write_text(TINY_MLIR)
    (root / "sample.mlir").write_text(SAMPLE_MLIR)
    shutil.copy(EXAMPLES / "targets" / "paper-2x2.toml", root / "target.toml")
    shutil.copy(EXAMPLES / "traces" / "sample_routing.jsonl", root / "routing.jsonl")
    shutil.copy(EXAMPLES / "hf" / "qwen3-30b-a3b.json", root / "config.json")
    save_trace(synth_trace(load_model_spec(str(root / "model.mlir")), 8, 2, 4, "zipf:0.8", 0.3, 7),
               str(root / "trace.npz"))
    argv = ["compile", str(root / "model.mlir"), "--target", "paper-2x2", "--shards-per-chiplet", "1",
            "--trace", str(root / "trace.npz"), "-o", str(root / "prog")]
    assert main(argv) == 0, argv
    shutil.copy(root / "prog" / "final.mlir", root / "final.mlir")
    argv = ["compile", str(root / "model.mlir"), "--target", "paper-2x2", "--shards-per-chiplet", "1",
            "-o", str(root / "dprog")]
    assert main(argv) == 0, argv
    return root


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """What one command of a case did, and what was wrong with it (empty: fine)."""

    argv: list[str]
    code: int | None
    err: str
    seconds: float
    problems: list[str] = field(default_factory=list)


def _child(argv: list[str], out_file: str, err_file: str, wfd: int, mem_bytes: int) -> None:
    """Run `fsedpc argv` in this (forked) process; write the exit code or traceback to `wfd`."""
    result: dict[str, Any] = {}
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        fo, fe = os.open(out_file, os.O_WRONLY | os.O_CREAT, 0o600), os.open(err_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(fo, 1)
        os.dup2(fe, 2)
        sys.stdout = open(1, "w", closefd=False, encoding="utf-8")
        sys.stderr = open(2, "w", closefd=False, encoding="utf-8")
        sys.stdin = open(os.devnull, encoding="utf-8")
        os.environ["FSEDPC_DEBUG"] = "1"
        os.environ["COLUMNS"] = "120"
        from fsedp_compiler.cli import main

        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        result["code"] = code
    except BaseException:  # noqa: BLE001 - the point: any exception is a finding
        result["traceback"] = traceback.format_exc()[-4000:]
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(wfd, json.dumps(result).encode())
        finally:
            os._exit(0)


def run_command(argv: list[str], workdir: Path, timeout: float, mem_bytes: int = 3 << 30) -> Outcome:
    """Run one command in a forked child with a time limit and an address-space cap."""
    rfd, wfd = os.pipe()
    out_file, err_file = str(workdir / ".stdout"), str(workdir / ".stderr")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(argv, out_file, err_file, wfd, mem_bytes)
    os.close(wfd)
    chunks, deadline = [], start + timeout
    timed_out = False
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([rfd], [], [], left)
        if ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(rfd)
    seconds = time.perf_counter() - start
    err = Path(err_file).read_text(errors="replace") if Path(err_file).exists() else ""
    for f in (out_file, err_file):
        Path(f).unlink(missing_ok=True)
    if timed_out:
        return Outcome(argv, None, err, seconds, [f"hang (over {timeout:.0f} s)"])
    try:
        result = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        result = {}
    if "traceback" in result:
        return Outcome(argv, None, result["traceback"], seconds, ["traceback"])
    if "code" not in result:
        return Outcome(argv, None, err, seconds, ["traceback (child died)"])
    return Outcome(argv, int(result["code"]), err, seconds)


def preimport() -> None:
    """Import what the commands import lazily, once, so that every forked case starts warm."""
    from fsedp_compiler.cli import build_parser
    import fsedp_compiler.commands.compile  # noqa: F401
    import fsedp_compiler.inputs.hf_import  # noqa: F401
    import fsedp_compiler.inputs.trace_import  # noqa: F401
    import fsedp_compiler.ir.modules  # noqa: F401
    import fsedp_compiler.sim.manifest  # noqa: F401
    import fsedp_compiler.sim.run  # noqa: F401

    build_parser()


def run_case(case: Case, seeds: Path, workdir: Path, timeout: float = 20.0) -> list[Outcome]:
    """Run every command of `case` and check: no traceback, no hang, exit 0 only for a possibly
    valid input (else 2 or 3 naming the file), nothing left in the output directory on failure."""
    if workdir.exists():
        shutil.rmtree(workdir)
    cdir, odir = workdir / "case", workdir / "out"
    cdir.mkdir(parents=True)
    odir.mkdir()
    if case.copy_prog:
        shutil.copytree(seeds / case.prog, cdir / case.prog)
    for rel, data in case.files.items():
        (cdir / rel).write_bytes(data)
    outcomes = []
    for template in case.commands:
        argv = [a.replace("{case}", str(cdir)).replace("{out}", str(odir)) for a in template]
        o = run_command(argv, workdir, timeout)
        if case.validity == DEADLOCK and o.code != 3:
            o.problems.append(f"missed-deadlock (exit {o.code})")
        elif case.validity == DEADLOCK and not ("deadlock" in o.err and re.search(r"chiplet \d+", o.err)):
            o.problems.append("missed-deadlock (the report names no chiplet)")
        if o.code == 0 and case.validity == INVALID:
            o.problems.append("accepted-invalid")
        elif o.code not in (None, 0, 2, 3):
            o.problems.append(f"exit {o.code}")
        elif o.code in (2, 3):
            if not any(name in o.err for name in case.names):
                o.problems.append("unlocated")
            left = [p.name for p in odir.iterdir()]
            if left:
                o.problems.append(f"partial output {left}")
        if o.code == 0:
            hidden = [p.name for p in odir.rglob(".*")]
            if hidden:
                o.problems.append(f"partial output {hidden}")
        outcomes.append(o)
        for p in odir.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return outcomes


CATEGORIES = ("traceback", "hang", "accepted-invalid", "missed-deadlock", "partial output", "unlocated", "exit")


def tally(results: list[tuple[Case, list[Outcome]]]) -> Counter:
    """Counts of cases, runs and of each kind of problem."""
    counts: Counter = Counter(cases=len(results), runs=sum(len(o) for _, o in results))
    for _, outcomes in results:
        for o in outcomes:
            for p in o.problems:
                counts[next((c for c in CATEGORIES if p.startswith(c)), p)] += 1
            if o.code == 0:
                counts["exit 0"] += 1
            elif o.code in (2, 3):
                counts[f"exit {o.code}"] += 1
    return counts


def describe(case: Case, o: Outcome) -> str:
    """One finding, for a failure message."""
    return (f"[{case.kind}] {case.mutation} ({case.validity}): fsedpc {' '.join(o.argv)} -> {o.code}: "
            f"{', '.join(o.problems)}\n    {o.err.strip()[-700:]}")


def main(argv: list[str] | None = None) -> int:
    """`make fuzz`: FSEDPC_FUZZ_CASES cases (default 2000), FSEDPC_FUZZ_SEED, print the counts."""
    import tempfile

    n = int(os.environ.get("FSEDPC_FUZZ_CASES", "2000"))
    seed = int(os.environ.get("FSEDPC_FUZZ_SEED", "14"))
    kinds = tuple(os.environ.get("FSEDPC_FUZZ_KINDS", ",".join(KINDS)).split(","))
    with tempfile.TemporaryDirectory(prefix="fsedpc-fuzz-") as tmp:
        seeds = corpus(Path(tmp) / "seeds")
        preimport()
        for kind in kinds:
            for o in run_case(seed_case(kind, seeds), seeds, Path(tmp) / "work"):
                if o.code != 0:
                    print(f"seed of {kind} is not accepted: fsedpc {' '.join(o.argv)} -> {o.code}\n{o.err}")
                    return 1
        results, start = [], time.perf_counter()
        for i, case in enumerate(cases(seeds, n, seed, kinds)):
            outcomes = run_case(case, seeds, Path(tmp) / "work")
            results.append((case, outcomes))
            for o in outcomes:
                if o.problems:
                    print(describe(case, o).replace("\n", " | ")[:900], flush=True)
            if (i + 1) % 200 == 0:
                print(f"... {i + 1}/{n} cases, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    counts = tally(results)
    print(f"fuzz: {counts['cases']} cases ({', '.join(kinds)}), {counts['runs']} runs, seed {seed}, "
          f"{time.perf_counter() - start:.0f} s: exit 0 {counts['exit 0']}, exit 2 {counts['exit 2']}, "
          f"exit 3 {counts['exit 3']}; tracebacks {counts['traceback']}, hangs {counts['hang']}, "
          f"accepted-invalid {counts['accepted-invalid']}, missed deadlocks {counts['missed-deadlock']}, "
          f"partial outputs {counts['partial output']}, "
          f"unlocated errors {counts['unlocated']}, other exit codes {counts['exit']}")
    bad = sum(counts[c] for c in CATEGORIES)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
