"""Every shipped model round-trips exactly through the parser and printer: the custom form, and
the generic form re-parsed (in-process; tests/filecheck/examples keeps one CLI pipe of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsedp_compiler.ir.modules import make_context, parse_module, print_module

MODELS = sorted((Path(__file__).resolve().parent.parent / "examples" / "models").glob("*.mlir"))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_model_round_trips(path: Path) -> None:
    text = path.read_text()
    module = parse_module(text, str(path), make_context())
    assert print_module(module) == text
    generic = print_module(module, generic=True)
    assert generic != text and '"moe.layer"' in generic
    assert print_module(parse_module(generic, "generic.mlir", make_context())) == text
