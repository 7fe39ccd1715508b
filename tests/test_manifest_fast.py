"""program.json's fast schema check (`manifest.fast_parse`) against the pydantic schema it follows:
on compiled programs both give the same fields (the same types too); on thousands of edited ones
the fast check never accepts what pydantic refuses, nor reads a field differently."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fsedp_compiler.bench.runner import restrict_model
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import load_model_spec, module_text_from_spec
from fsedp_compiler.sim.manifest import Checked, fast_parse, parse_manifest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> dict[str, str]:
    from fsedp_compiler.cli import main

    tmp = tmp_path_factory.mktemp("manifest")
    spec = restrict_model(load_model_spec(str(REPO / "examples" / "models" / "tiny-moe.mlir")), 1, True, None)
    (tmp / "m.mlir").write_text(module_text_from_spec(spec))
    save_trace(synth_trace(spec, 8, 1, 4, "zipf:0.8", 0.0, 3), str(tmp / "t.npz"))
    out = {}
    for name, extra in (("fsedp", ["--trace", str(tmp / "t.npz")]), ("dynamic", ["--text", "never"]),
                        ("ep", ["--trace", str(tmp / "t.npz"), "--strategy", "ep"]),
                        ("auto", ["--trace", str(tmp / "t.npz"), "--strategy", "auto"])):
        d = tmp / name
        assert main(["compile", str(tmp / "m.mlir"), "--target", "paper-2x2", "--shards-per-chiplet", "1",
                     "-o", str(d), *extra]) == 0
        out[name] = (d / "program.json").read_text()
    return out


def _typed(v):
    """A value with every leaf's type, so that 2 and 2.0 (or a list and a tuple) differ."""
    from pydantic import BaseModel

    if isinstance(v, BaseModel):
        return ("obj", {k: _typed(getattr(v, k)) for k in type(v).model_fields})
    if isinstance(v, Checked):
        return ("obj", {k: _typed(x) for k, x in v._fields.items()})
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_typed(x) for x in v])
    if isinstance(v, dict):
        return ("dict", {k: _typed(x) for k, x in v.items()})
    return (type(v).__name__, v)


def _pydantic(text: str):
    from pydantic import ValidationError

    from fsedp_compiler.sim.manifest_schema import Manifest

    try:
        return Manifest.model_validate_json(text)
    except ValidationError:
        return None


def _leaves(doc, path=()):
    if isinstance(doc, dict):
        yield path, doc
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        yield path, doc
        for i, v in enumerate(doc):
            yield from _leaves(v, (*path, i))
    else:
        yield path, doc


def _set(doc, path, value):
    doc = copy.deepcopy(doc)
    obj = doc
    for p in path[:-1]:
        obj = obj[p]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return doc


_DELETE = object()
VALUES = [_DELETE, None, True, False, 0, 1, 2, -1, 63, 64, 4095, 4096, 65535, 1 << 20, (1 << 20) + 1, 1 << 50,
          (1 << 63), 1 << 70, 0.0, -0.0, 0.5, 2.0, 1e12, 1.5e12, "", "x", "fsedp", "auto", "int8", "static", "a" * 201,
          "chiplet_0.bin", "../x", "a\n", "0" * 64, "0" * 64 + "\n", [], [0], [0, 1], [0, 1, 2], {}, {"x": 1}]


@pytest.mark.parametrize("name", ["fsedp", "dynamic", "ep", "auto"])
def test_the_fast_check_reads_a_compiled_program_as_pydantic_does(manifests, name: str) -> None:
    text = manifests[name]
    fast = fast_parse(text)
    assert fast is not None
    assert _typed(fast) == _typed(_pydantic(text))
    assert parse_manifest(text) is not None


@pytest.mark.parametrize("name", ["fsedp", "dynamic", "auto"])
def test_the_fast_check_never_accepts_more_than_pydantic(manifests, name: str) -> None:
    doc = json.loads(manifests[name])
    tried = accepted = 0
    for path, _ in list(_leaves(doc)):
        if not path:
            continue
        for value in VALUES:
            if value is _DELETE and not isinstance(path[-1], str):
                continue
            text = json.dumps(_set(doc, path, value))
            fast = fast_parse(text)
            tried += 1
            if fast is not None:
                accepted += 1
                slow = _pydantic(text)
                assert slow is not None, (path, value)
                assert _typed(fast) == _typed(slow), (path, value)
        if isinstance(_get(doc, path), dict):  # a field the schema does not have
            assert fast_parse(json.dumps(_set(doc, (*path, "extra"), 1))) is None
    assert tried > 1000 and accepted > 50
    for text in (manifests[name].replace("false", "NaN", 1), manifests[name] + "x", "\ufeff" + manifests[name],
                 manifests[name].replace('"format"', '"format": "fsedpc-program", "format"', 1), "[]", ""):
        assert fast_parse(text) is None


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def test_errors_are_pydantics(manifests) -> None:
    doc = json.loads(manifests["fsedp"])
    doc["layers"][0]["buffers"] = 1
    with pytest.raises(ValueError, match=r"^layers\.0\.buffers: Input should be greater than or equal to 2"):
        parse_manifest(json.dumps(doc))
    del doc["manifest_sha256"]
    doc["layers"][0]["buffers"] = 2
    with pytest.raises(ValueError, match="^manifest_sha256: missing: .*recompile"):
        parse_manifest(json.dumps(doc))


def test_loading_a_program_imports_no_pydantic(manifests, tmp_path_factory) -> None:
    """A program fsedpc wrote passes the fast check: simulating it never imports pydantic."""
    import subprocess
    import sys

    from fsedp_compiler.cli import main

    tmp = tmp_path_factory.mktemp("nopydantic")
    spec = restrict_model(load_model_spec(str(REPO / "examples" / "models" / "tiny-moe.mlir")), 1, True, None)
    (tmp / "m.mlir").write_text(module_text_from_spec(spec))
    save_trace(synth_trace(spec, 8, 1, 4, "uniform", 0.0, 1), str(tmp / "t.npz"))
    assert main(["compile", str(tmp / "m.mlir"), "--trace", str(tmp / "t.npz"), "-o", str(tmp / "p")]) == 0
    code = ("import sys; from fsedp_compiler.sim.loader import load_outdir; from fsedp_compiler.sim.run import simulate\n"
            f"simulate(load_outdir({str(tmp / 'p')!r}))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic' or m.endswith('manifest_schema')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
