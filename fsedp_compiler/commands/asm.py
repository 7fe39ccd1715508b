"""`fsedpc asm OUTDIR` and `fsedpc disasm FILE.bin`: the two forms of a program, by hand.

`asm` reassembles every `chiplet_<i>.fsa` of a program directory into its `.bin` and records the
new hashes in program.json, marked `"edited": true`, and re-digests program.json (its
`manifest_sha256`); the simulator then runs the edited program (and refuses a directory whose
`.fsa` no longer matches its `.bin`). `asm` changes instructions only: it first checks that
program.json's own fields are as compiled, so it cannot bless a hand-edited target or layer.
`disasm` prints a `.bin` as text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "asm", help="reassemble a program directory's edited .fsa files into .bin",
        description="Parse every chiplet_<i>.fsa of OUTDIR (errors at file:line:col), check it fits its chiplet "
        "(ports, DRAM channels), write its .bin and update program.json (hashes, instruction counts, "
        "\"edited\": true, its digest). program.json itself must be as compiled.")
    p.add_argument("outdir", metavar="OUTDIR")
    p.set_defaults(func=run_asm)
    d = subparsers.add_parser("disasm", help="print an ISA binary (.bin) as text",
                              description="Decode FILE.bin (a chiplet program, or a static program's "
                                          "streams.bin) and print it as text.")
    d.add_argument("binary", metavar="FILE.bin")
    d.set_defaults(func=run_disasm)


def run_asm(args: argparse.Namespace) -> int:
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.files.digest import with_digest
    from fsedp_compiler.files.fileio import atomic_write_bytes, atomic_write_text, read_text
    from fsedp_compiler.isa import encode, parse_text, sha256_hex
    from fsedp_compiler.sim.loader import check_digest, chiplet_ports, manifest_target
    from fsedp_compiler.sim.manifest import parse_manifest

    outdir = args.outdir
    path = os.path.join(outdir, "program.json")
    text = read_text(path, "program.json") if os.path.isdir(outdir) else None
    if text is None:
        raise FsedpError("not a directory; give the output directory of `fsedpc compile`", path=outdir)
    try:
        checked = parse_manifest(text)
    except ValueError as err:
        raise FsedpError(str(err), path=path) from None
    check_digest(text, path)
    manifest = json.loads(text)
    target = manifest_target(checked, path)
    binaries = []
    for entry, model in zip(manifest["programs"], checked.programs):
        if model.fsa is None:
            raise FsedpError(f"chiplet {model.chiplet}'s program was compiled without its text form (.fsa); "
                             "recompile with --text always to edit it", path=path, field=f"programs.{model.chiplet}")
        fsa = os.path.join(outdir, model.fsa)
        source = read_text(fsa, "program text")
        program = parse_text(source, fsa)
        c = model.chiplet
        channels = target.chiplet.dram_channels if c in target.dram_at else 0
        if program.chiplet != c:
            raise FsedpError(f".chiplet {program.chiplet}, but program.json lists this file for chiplet {c}", path=fsa)
        if program.ports != chiplet_ports(target, c) or program.channels != channels or program.mode != checked.mode:
            raise FsedpError(f"the directives must describe chiplet {c} of {target.name}: .mode {checked.mode}, "
                             f".channels {channels}, .ports {' '.join(map(str, chiplet_ports(target, c)))}", path=fsa)
        data = encode(program)
        binaries.append((entry, os.path.join(outdir, model.bin), data, source, len(program)))
    for entry, bin_path, data, source, count in binaries:
        atomic_write_bytes(bin_path, data)
        entry.update(bin_sha256=sha256_hex(data), fsa_sha256=sha256_hex(source.encode("utf-8")), instructions=count)
    manifest["edited"] = True
    atomic_write_text(path, json.dumps(with_digest(manifest), indent=2, sort_keys=True) + "\n")
    print(f"assembled {len(binaries)} programs into {outdir}; program.json marks them as edited")
    return 0


def run_disasm(args: argparse.Namespace) -> int:
    from fsedp_compiler.errors import FsedpError
    from fsedp_compiler.isa import TABLES_MAGIC, decode, decode_tables, tables_text, to_text

    try:
        with open(args.binary, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise FsedpError(f"cannot read: {err.strerror}", path=args.binary) from None
    if data[:4] == TABLES_MAGIC:  # a static program's shared stream tables (streams.bin)
        sys.stdout.write(tables_text(decode_tables(data, args.binary)))
    else:
        sys.stdout.write(to_text(decode(data, args.binary)))
    return 0
