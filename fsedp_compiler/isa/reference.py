"""The opcode section of docs/isa.md, rendered from `opcodes.OPS` (`python -m fsedp_compiler.isa.reference`)."""

from __future__ import annotations

import sys

from fsedp_compiler.isa.opcodes import CONDITIONS, INSTR_DTYPE, OPS, POLICIES, Field

BEGIN = "<!-- BEGIN generated opcode reference: python -m fsedp_compiler.isa.reference -->"
END = "<!-- END generated opcode reference -->"


def _syntax(f: Field) -> str:
    if f.kind == "cond":
        return "|".join(CONDITIONS.values())
    if f.kind == "policy":
        return "|".join(POLICIES.values())
    if f.kind == "dir":
        return "dir=cw|ccw|short|short-ccw"
    if f.kind in ("id", "ring"):
        return f"[{f.key}=N]"
    star = "|*" if f.kind in ("tag", "port", "channel", "addr") else ""
    return f"{f.key}=N{star}"


def render() -> str:
    """Markdown: the record layout and one entry per opcode (fields, columns, engine, semantics)."""
    out = [BEGIN, "", "### Record layout", "", "| offset | type | column |", "|---|---|---|"]
    for name in INSTR_DTYPE.names:
        dt, offset = INSTR_DTYPE.fields[name][:2]
        out.append(f"| {offset} | u{8 * dt.itemsize} | `{name}` |")
    out += ["", "### Opcodes", ""]
    for value, info in OPS.items():
        text = " ".join(_syntax(f) for f in info.fields) if info.mnemonic != "mask" else "(binary only)"
        out.append(f"#### `{info.mnemonic}` (0x{value:02X}) — engine `{info.engine}`, {info.kind} programs")
        out.append("")
        out.append(f"`{info.mnemonic} {text}`".replace(" `", "`") if not info.fields else f"`{info.mnemonic} {text}`")
        out.append("")
        out.append(info.semantics)
        if info.fields:
            out += ["", "| field | column | meaning |", "|---|---|---|"]
            out += [f"| `{f.key}` | `{f.column}` | {f.doc} |" for f in info.fields]
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def splice(document: str) -> str:
    """`document` with its generated section replaced by the current rendering."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + render() + tail.lstrip("\n")


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
