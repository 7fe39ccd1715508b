"""`fsedpc compile`: golden instruction streams, determinism, errors."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

from fsedp_compiler.isa import decode, parse_text

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "examples" / "models" / "tiny-moe.mlir"
TRACE = REPO / "examples" / "traces" / "tiny-moe-4c.npz"
GOLDEN = REPO / "tests" / "golden" / "compile-tiny-moe"


def compile_to(fsedpc, outdir: Path, *extra: str) -> None:
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "--trace", str(TRACE), "-o", str(outdir), *extra)
    assert r.code == 0, r.err


def test_golden_fsa(fsedpc, tmp_path: Path) -> None:
    compile_to(fsedpc, tmp_path)
    for i in range(4):
        assert (tmp_path / f"chiplet_{i}.fsa").read_text() == (GOLDEN / f"chiplet_{i}.fsa").read_text(), i


def test_compiling_twice_gives_identical_bytes(fsedpc, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    compile_to(fsedpc, a)
    compile_to(fsedpc, b)
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert {"program.json", "final.mlir", "chiplet_0.fsa", "chiplet_0.bin"} <= set(names)
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors


def test_relative_and_absolute_input_paths_give_identical_bytes(fsedpc, tmp_path: Path, monkeypatch) -> None:
    """Paths stored in outputs are relative to the output (the bundled trace is `trace.npz`), so
    how the inputs were named does not change a byte."""
    import shutil

    shutil.copy(MODEL, tmp_path / "m.mlir")
    shutil.copy(TRACE, tmp_path / "t.npz")
    monkeypatch.chdir(tmp_path)
    for out, model, trace in (("rel", "m.mlir", "t.npz"), ("abs", str(tmp_path / "m.mlir"), str(tmp_path / "t.npz"))):
        r = fsedpc("compile", model, "--target", "paper-2x2", "--trace", trace, "-o", out)
        assert r.code == 0, r.err
    names = sorted(os.listdir(tmp_path / "rel"))
    assert names == sorted(os.listdir(tmp_path / "abs"))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "rel", tmp_path / "abs", names, shallow=False)
    assert not mismatch and not errors


def test_manifest_hashes_and_binary_match_text(fsedpc, tmp_path: Path) -> None:
    import hashlib

    compile_to(fsedpc, tmp_path)
    manifest = json.loads((tmp_path / "program.json").read_text())
    assert manifest["mode"] == "static" and manifest["model"] == "tiny-moe" and manifest["target"]["name"] == "paper-2x2"
    for entry in manifest["programs"]:
        data = (tmp_path / entry["bin"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["bin_sha256"]
        text = (tmp_path / entry["fsa"]).read_text()
        assert decode(data) == parse_text(text)


def test_dynamic_programs_do_not_depend_on_routing(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "-o", str(tmp_path / "dyn"))
    assert r.code == 0, r.err
    text = (tmp_path / "dyn" / "chiplet_0.fsa").read_text()
    assert "streams" in text and "when" in text and "where" in text
    # every chiplet runs the same template: the programs differ only in the header
    bodies = {(tmp_path / "dyn" / f"chiplet_{i}.fsa").read_text().split(".ports")[1].split("\n", 1)[1] for i in range(4)}
    assert len(bodies) == 1


def test_compile_without_target_says_which_default(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "-o", str(tmp_path / "d"))
    assert r.code == 0 and "using the default preset 'paper-2x2'" in r.err


def test_compile_errors(fsedpc, tmp_path: Path) -> None:
    r = fsedpc("compile", str(MODEL), "--mode", "static", "-o", str(tmp_path / "x"))
    assert r.code == 2 and "static mode needs a routing trace" in r.err
    big = REPO / "examples" / "models" / "mixtral-8x7b.mlir"
    r = fsedpc("compile", str(big), "--target", "paper-2x2", "--shards-per-chiplet", "1", "-o", str(tmp_path / "y"))
    assert r.code == 2 and "SRAM too small" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())


def test_output_path_that_is_a_file(fsedpc, tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me")
    r = fsedpc("compile", str(MODEL), "--target", "paper-2x2", "-o", str(target))
    assert r.code == 2 and f"{target}: error: output path exists and is not a directory" in r.err
    assert target.read_text() == "keep me"
    r = fsedpc("simulate", str(target))
    assert r.code == 2 and "not a directory" in r.err and "Traceback" not in r.err
