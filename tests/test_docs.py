"""The docs agree with the code: every command line they show uses options the CLI has, every
`make` target they name exists, every relative link resolves, and the README stays short."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from fsedp_compiler.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "examples" / "traces" / "README.md"]
PAGES = [p for p in PAGES if p.exists()]

#: `fsedpc SUB …` at the start of a code span or a code line, up to the span's end or a table cell.
COMMAND = re.compile(r"^(?:\$ )?fsedpc ([a-z][a-z-]*)((?: [^`|\n]*)?)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_parser(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """The parser of `fsedpc WORDS…` (descending into `trace synth`, `sweep report`), and the rest."""
    parser = build_parser()
    subs = _subparsers(parser)
    if not words or words[0] not in subs:
        return None
    parser, words = subs[words[0]], words[1:]
    nested = _subparsers(parser)
    if nested and words and words[0] in nested:
        parser, words = nested[words[0]], words[1:]
    return parser, words


def _code(text: str) -> list[str]:
    """Inline code spans and the lines of fenced code blocks."""
    pieces, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            pieces.append(line.strip())
        else:
            pieces += re.findall(r"`([^`]+)`", line)
    return pieces


def _mentions() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for piece in _code(page.read_text(encoding="utf-8")):
            if m := COMMAND.match(piece):
                found.append((page.name, m.group(1), m.group(2)))
    return found


def test_the_docs_show_commands() -> None:
    assert len(_mentions()) > 40


@pytest.mark.parametrize("page, sub, rest", _mentions(), ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "")
def test_every_command_shown_uses_options_the_cli_has(page: str, sub: str, rest: str) -> None:
    words = [sub, *rest.split()]
    found = _command_parser(words)
    assert found is not None, f"{page}: `fsedpc {sub}` is not a command"
    parser, rest_words = found
    known = set(parser._option_string_actions)
    for word in rest_words:
        for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", word):
            if flag.startswith("--") or len(flag) == 2:
                assert flag in known, f"{page}: `fsedpc {sub} {rest.strip()}` uses {flag}, unknown to the CLI"


def test_example_command_lines_parse() -> None:
    """Lines shown as typed (`$ fsedpc …`, or in a sh block without placeholders) parse as they are."""
    checked = 0
    for page in PAGES:
        for m in re.finditer(r"^\$ (fsedpc .*)$", page.read_text(encoding="utf-8"), re.M):
            found = _command_parser(shlex.split(m.group(1))[1:])
            assert found is not None, f"{page.name}: {m.group(1)}"
            parser, _ = found
            try:
                build_parser().parse_args(shlex.split(m.group(1))[1:])
            except SystemExit:
                pytest.fail(f"{page.name}: `{m.group(1)}` does not parse")
            checked += 1
    assert checked >= 1


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def test_every_make_target_named_exists() -> None:
    targets = _make_targets()
    for page in PAGES:
        for target in re.findall(r"`make ([a-z][\w-]*)", page.read_text(encoding="utf-8")):
            assert target in targets, f"{page.name}: `make {target}` is not a Makefile target"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text, anchors, fenced = page.read_text(encoding="utf-8"), set(), False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#+ (.*)", line)):
            anchors.add(_slug(m.group(1)))
    return anchors


def test_every_relative_link_resolves() -> None:
    for page in PAGES:
        for url in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^(https?|mailto):", url):
                continue
            path, _, anchor = url.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.exists(), f"{page.name}: link to {url} points at nothing"
            if anchor and target.suffix == ".md":
                assert anchor in _anchors(target), f"{page.name}: link to {url}: no such heading"


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len((REPO / "README.md").read_bytes()) <= 8 * 1024


def test_the_readme_demo_describes_what_make_demo_runs() -> None:
    """Every sub-command the README says `make demo` runs is in the Makefile's demo target."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    para = readme[readme.index("`make demo` runs"):]
    para = para[:para.index("\n\n")]
    makefile = (REPO / "Makefile").read_text()
    demo = makefile[makefile.index("\ndemo:"):]
    demo = demo[:demo.index("\n\n")]
    for sub in set(re.findall(r"`fsedpc ([a-z-]+)", para)):
        assert f"fsedpc {sub}" in demo, f"README says make demo runs `fsedpc {sub}`; the Makefile does not"
