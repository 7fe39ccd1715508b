"""`fsedpc sweep`: spec validation with located errors, both executors giving the same rows as
`fsedpc bench`, resuming after an interrupt, failures recorded without stopping, and the report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fsedp_compiler.sweep.locate import line_of
from fsedp_compiler.sweep.spec import expand_range
from fsedp_compiler.sweep.worker import TIMING_KEYS

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"

#: Four points: 2 token counts x fsedp and ep, one MoE layer of tiny-moe, one step.
TINY = f"""
name = "tiny"
model = "{MODEL}"
moe_layers = 1
dense = false
steps = 1
tokens = [8, 16]
strategies = ["fsedp", "ep"]
"""


def write(tmp: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def rows_of(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "rows.jsonl").read_text().splitlines() if line.strip()]


def untimed(rows: list[dict]) -> list[dict]:
    """Rows without what varies from run to run, in a fixed order."""
    return sorted(({k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows), key=lambda r: r["key"])


# --- the spec ---------------------------------------------------------------------------------------

#: (what is added to TINY, the line of the error within it, the message)
BAD_SPECS = [
    ('stepz = 2', 1, "stepz: unknown field; did you mean 'steps'?"),
    ('tokens = [8, 0]', 1, "tokens[1]: must be >= 1, got 0"),
    ('strategies = ["fsedp", "epp"]', 1, "strategies: unknown strategy 'epp' at position 1 (did you mean 'ep'?)"),
    ('tokens = { start = 1, stop = 8, factor = 1 }', 1, "tokens: a geometric range needs start > 0 and factor > 1"),
    ('routing = [{ skew = "zipf:1", locality = 2 }]', 1, "routing[0].locality: must be <= 1, got 2"),
    ('routing = "zipf:x"', 1, "routing: expected 'uniform' or 'zipf:A'"),
    ('dtype = "fp64"', 1, "dtype: must be 'bf16', 'fp16', 'int8' or 'fp8', got 'fp64'"),
    ('target = "paper-9x9"', 1, "target[0]: unknown target preset 'paper-9x9'"),
    ('moe_layers = [[0, 7]]', 1, "tiny-moe.mlir: block 7 has no MoE layer; MoE layers are at [0, 1, 2, 3]"),
    ('[set]\nlink.gbps = [64, -1]', 2, "set.link.gbps: paper-2x2 with link.gbps = -1: link.gbps: must be > 0"),
    ('[set]\n"chiplet.sram_mb" = 8', 2, "set.chiplet.sram_mb: paper-2x2 with chiplet.sram_mb = 8: chiplet.sram_mb: "
                                         "unknown field"),
    (f'routing = {{ trace = "{TRACE}" }}\ntarget = "ring-8"\nmoe_layers = 4', 1,
     "routing[0].trace: the trace spreads tokens over 4 chiplets but ring-8 has 8"),
    ('tokens = [8,, 16]', 1, "error: Invalid value"),
]


@pytest.mark.parametrize("extra, line, message", BAD_SPECS, ids=[b[0].split("=")[0].strip() for b in BAD_SPECS])
def test_bad_specs_get_located_errors(fsedpc, tmp_path: Path, extra: str, line: int, message: str) -> None:
    text = TINY.replace('strategies = ["fsedp", "ep"]\n', "") if extra.startswith("strategies") else TINY
    if extra.startswith("tokens"):
        text = text.replace("tokens = [8, 16]\n", "")
    if extra.startswith("moe_layers") or "moe_layers = 4" in extra:
        text = text.replace("moe_layers = 1\n", "")
    spec = write(tmp_path, text + extra + "\n")
    r = fsedpc("sweep", str(spec), "--dry-run")
    assert r.code == 2, r.out + r.err
    assert f"{spec}:{len(text.splitlines()) + line}:" in r.err and message in r.err, r.err
    assert "Traceback" not in r.err


def test_spec_lines_in_grids(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        model = "m.mlir"
        [set]
        link.gbps = 1
        [[grid]]
        tokens = 1
        [[grid]]
        name = "b"
        tokens = [1, 2]
        [grid.set]
        "chiplet.sram_mib" = 8
        """)
    assert line_of(text, ("grid", 1, "tokens", 1)) == 8
    assert line_of(text, ("grid", 0, "tokens")) == 5
    assert line_of(text, ("grid", 1, "set", "chiplet.sram_mib")) == 10
    assert line_of(text, ("set", "link.gbps")) == 3
    assert line_of(text, ("model",)) == 1
    assert expand_range({"start": 1, "stop": 256, "factor": 4}) == [1, 4, 16, 64, 256]
    assert expand_range({"start": 12.8, "stop": 51.2, "factor": 2}) == [12.8, 25.6, 51.2]
    assert expand_range({"start": 64, "stop": 256, "step": 64}) == [64, 128, 192, 256]


def test_dry_run_counts_points(fsedpc, tmp_path: Path) -> None:
    spec = write(tmp_path, TINY + "[set]\nlink.gbps = { start = 64, stop = 256, factor = 2 }\n")
    r = fsedpc("sweep", str(spec), "--dry-run")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "12 points" and "estimated" in r.out
    assert not (tmp_path / "store").exists()


def test_overlapping_grids_run_a_point_once(fsedpc, tmp_path: Path) -> None:
    spec = write(tmp_path, TINY + '[[grid]]\nname = "a"\n[[grid]]\nname = "b"\nstrategies = ["fsedp", "tp"]\n')
    r = fsedpc("sweep", str(spec), "--dry-run")
    assert r.out.splitlines()[0] == "6 points"  # fsedp at 8 and 16 tokens is in both grids


def test_examples_expand(fsedpc) -> None:
    for name, count in (("example", 136), ("regime", 108)):
        r = fsedpc("sweep", str(REPO / "examples" / "sweeps" / f"{name}.toml"), "--dry-run")
        assert r.code == 0, r.err
        assert r.out.splitlines()[0] == f"{count} points"


# --- running: rows, executors, resume, failures -------------------------------------------------------


def test_local_pool_rows_are_bench_rows(fsedpc, tmp_path: Path) -> None:
    """Every field of a bench row, equal to `fsedpc bench`'s on the same inputs (ratios from the report)."""
    spec = write(tmp_path, TINY)
    r = fsedpc("sweep", str(spec), "-o", str(tmp_path / "store"), "--jobs", "2")
    assert r.code == 0, r.err
    rows = rows_of(tmp_path / "store")
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)
    assert len({row["key"] for row in rows}) == 4 and len({row["group"] for row in rows}) == 2
    r = fsedpc("bench", str(MODEL), "--moe-layers", "1", "--no-dense", "--steps", "1", "--tokens", "8,16",
               "--strategies", "fsedp,ep", "--json", str(tmp_path / "bench.json"))
    assert r.code == 0, r.err
    bench = json.loads((tmp_path / "bench.json").read_text())["rows"]
    r = fsedpc("sweep", "report", str(tmp_path / "store"), "--json", str(tmp_path / "report.json"), "--no-figures")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "report.json").read_text())
    swept = {(row["tokens"], row["strategy"]): row for row in report["rows"]}
    for b in bench:
        s = swept[(b["tokens"], b["strategy"])]
        assert {k: s[k] for k in b} == b
        assert s["target"] == "paper-2x2" and s["routing"] == "uniform" and s["seed"] == 0


def test_ray_executor_gives_the_same_rows(fsedpc, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'fsedp-compiler[ray]')")
    spec = write(tmp_path, TINY)
    r = fsedpc("sweep", str(spec), "-o", str(tmp_path / "local"), "--jobs", "1")
    assert r.code == 0, r.err
    r = fsedpc("sweep", str(spec), "-o", str(tmp_path / "ray"), "--executor", "ray", "--jobs", "2")
    assert r.code == 0, r.err
    assert untimed(rows_of(tmp_path / "ray")) == untimed(rows_of(tmp_path / "local"))


def test_interrupted_sweep_resumes_without_redoing_points(fsedpc, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import fsedp_compiler.sweep.executors as executors

    real = executors.run_point
    calls: list[str] = []

    def interrupted(point):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third point runs
        calls.append(point.key)
        return real(point)

    spec = write(tmp_path, TINY)
    store = tmp_path / "store"
    monkeypatch.setattr(executors, "run_point", interrupted)
    r = fsedpc("sweep", str(spec), "-o", str(store), "--jobs", "1")
    assert r.code == 130 and "interrupted" in r.err
    first = [row["key"] for row in rows_of(store)]
    assert first == calls and len(first) == 2

    def counted(point):
        calls.append(point.key)
        return real(point)

    calls.clear()
    monkeypatch.setattr(executors, "run_point", counted)
    r = fsedpc("sweep", str(spec), "-o", str(store), "--jobs", "1")
    assert r.code == 0, r.err
    assert "2 of 4 points are already in" in r.err
    assert len(calls) == 2 and not set(calls) & set(first)
    keys = [row["key"] for row in rows_of(store)]
    assert len(keys) == len(set(keys)) == 4
    r = fsedpc("sweep", str(spec), "-o", str(store), "--dry-run")
    assert "4 already in" in r.out and "0 to run" in r.out


def test_failures_are_recorded_and_crashes_retried(fsedpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsedp_compiler.bench.runner as bench

    real = bench.run_point

    def flaky(cfg, tokens, strategy, workdir):
        if strategy == "ep" and tokens == 8 and cfg.buffers == 6:
            raise RuntimeError("simulated crash")
        return real(cfg, tokens, strategy, workdir)

    # buffers = 1 breaks R4: a bad input, final; the crash is tried again on the next run
    spec = write(tmp_path, TINY + "buffers = [1, 6]\n")
    store = tmp_path / "store"
    monkeypatch.setattr(bench, "run_point", flaky)
    r = fsedpc("sweep", str(spec), "-o", str(store), "--jobs", "1", "--status-every", "0.02")
    assert r.code == 1 and "8 points run" in r.err and "5 failed" in r.err, r.err  # it went on past them
    assert "sweep: " in r.err and "points/min, elapsed" in r.err  # status lines (not a terminal)
    rows = rows_of(store)
    bad = [row for row in rows if row["status"] != "ok"]
    assert sorted((row["buffers"], row["error_kind"]) for row in bad) == [(1, "input")] * 4 + [(6, "crash")]
    assert "simulated crash" in next(row["error"] for row in bad if row["error_kind"] == "crash")
    assert "buffers" in next(row["error"] for row in bad if row["error_kind"] == "input")
    monkeypatch.setattr(bench, "run_point", real)
    with open(store / "rows.jsonl", "a") as handle:  # a row torn by a crash of the sweep itself
        handle.write('{"key": "tor')
    r = fsedpc("sweep", str(spec), "-o", str(store), "--jobs", "1")
    assert "7 of 8 points are already in" in r.err and "1 points run" in r.err, r.err
    assert r.code == 1 and "4 points of the spec failed" in r.err  # the bad inputs stay failed
    rows = rows_of(store)
    assert len(rows) == 9 and rows[-1]["status"] == "ok" and rows[-1]["strategy"] == "ep"
    r = fsedpc("sweep", "report", str(store), "--no-figures")
    assert r.code == 0 and "8 points, 4 finished, 4 failed" in r.out


# --- the report -------------------------------------------------------------------------------------


def test_report_tables_json_and_figures(fsedpc, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    spec = write(tmp_path, TINY + "[set]\nlink.gbps = [64, 128]\n")
    store = tmp_path / "store"
    assert fsedpc("sweep", str(spec), "-o", str(store), "--jobs", "1").code == 0
    r = fsedpc("sweep", "report", str(store), "--json", "-")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["axes"] == ["link.gbps", "link_dram_ratio", "tokens"]
    assert report["points"] == 8 and report["failed"] == 0
    for row in report["rows"]:
        assert row["ratio_to_best"] >= 1.0 and row["best"] in ("fsedp", "ep")
        assert row["speedup_of_fsedp"] == (1.0 if row["strategy"] == "fsedp" else row["speedup_of_fsedp"])
    assert "step time over the fastest plan of the same point that fits SRAM" in r.err and "per strategy" in r.err
    assert "best strong (binds)" in r.err and "fsedp speedup over best strong" in r.err
    figures = store / "figures"
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["binding.png", "figures.md", "heatmap-link_dram_ratio-tokens.png", "ratio-to-best.png"]
    assert all((figures / n).read_bytes()[:4] == b"\x89PNG" for n in names if n.endswith(".png"))
    r = fsedpc("sweep", "report", str(store), "--axes", "tokens,nope", "--no-figures")
    assert r.code == 2 and "--axes: expected two parameters" in r.err


def test_cli_misuse(fsedpc, tmp_path: Path) -> None:
    spec = write(tmp_path, TINY)
    r = fsedpc("sweep", str(spec))
    assert r.code == 2 and "-o: give the results store" in r.err
    r = fsedpc("sweep", "report", str(tmp_path / "none"))
    assert r.code == 2 and "no sweep store here" in r.err
    r = fsedpc("sweep", "report", str(tmp_path), "--jobs", "2")
    assert r.code == 2 and "--jobs: only for running a sweep" in r.err
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    r = fsedpc("sweep", str(spec), "-o", str(tmp_path / "user"))
    assert r.code == 2 and "not a sweep store" in r.err
