"""Tamper suite: hand-edit compiled programs (`.fsa`, reassembled with `fsedpc asm`) and check that
the machine catches every edit: a located error (exit 2, naming the file and line), a deadlock
report (exit 3) or a functional mismatch; edits that leave the program's meaning unchanged are
listed and must give identical metrics."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fsedp_compiler.bench.runner import restrict_model
from fsedp_compiler.files.digest import with_digest
from fsedp_compiler.inputs.trace_synth import synth_trace
from fsedp_compiler.inputs.traces import save_trace
from fsedp_compiler.ir.modules import load_model_spec, module_text_from_spec
from fsedp_compiler.isa import OPCODE, OPS

REPO = Path(__file__).resolve().parent.parent
HEADER_LINES = 5  # `# fsedpc ISA v3` and the four directives: record i is on line i + 6


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """Compiled programs of a one-MoE-layer model on paper-2x2 (static FSE-DP, dynamic FSE-DP,
    EP, TP, DP, FSDP), each with its metrics; built once."""
    from fsedp_compiler.cli import main

    tmp = tmp_path_factory.mktemp("tamper")
    spec = restrict_model(load_model_spec(str(REPO / "examples" / "models" / "tiny-moe.mlir")), 1, True, None)
    (tmp / "m.mlir").write_text(module_text_from_spec(spec))
    save_trace(synth_trace(spec, 8, 1, 4, "zipf:0.8", 0.0, 3), str(tmp / "t.npz"))
    out = {}
    for name, extra in (("fsedp", ["--trace", str(tmp / "t.npz")]), ("dynamic", []),
                        ("ep", ["--trace", str(tmp / "t.npz"), "--strategy", "ep"]),
                        ("tp", ["--trace", str(tmp / "t.npz"), "--strategy", "tp"]),
                        ("dp", ["--trace", str(tmp / "t.npz"), "--strategy", "dp"]),
                        ("fsdp", ["--trace", str(tmp / "t.npz"), "--strategy", "fsdp"])):
        d = tmp / name
        assert main(["compile", str(tmp / "m.mlir"), "--target", "paper-2x2", "--shards-per-chiplet", "1",
                     "-o", str(d), *extra]) == 0
        args = ["simulate", str(d), "--functional", "--metrics", str(tmp / f"{name}.json")]
        if name == "dynamic":
            args += ["--trace", str(tmp / "t.npz")]
        assert main(args) == 0
        out[name] = (d, json.loads((tmp / f"{name}.json").read_text()), tmp / "t.npz")
    return out


def _run(fsedpc, programs, tmp: Path, name: str, chiplet: int, edit) -> tuple[int, str, dict | None]:
    """Copy program `name`, apply `edit(lines)` to chiplet `chiplet`'s .fsa, asm, simulate."""
    base, _, trace = programs[name]
    d = tmp / "edited"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(base, d)
    fsa = d / f"chiplet_{chiplet}.fsa"
    lines = fsa.read_text().splitlines()
    fsa.write_text("\n".join(edit(lines)) + "\n")
    r = fsedpc("asm", str(d))
    if r.code:
        return r.code, r.err, None
    args = ["simulate", str(d), "--functional", "--metrics", str(tmp / "m.json")]
    if name == "dynamic":
        args += ["--trace", str(trace)]
    r = fsedpc(*args)
    assert "Traceback" not in r.err
    return r.code, r.err, json.loads((tmp / "m.json").read_text()) if r.code == 0 else None


def _caught(code: int, err: str, chiplet: int) -> bool:
    """A located error naming a program file (and line) or the stream-table file, a deadlock report
    or a functional mismatch."""
    if code == 3:
        return "deadlock" in err
    return code == 2 and ("functional mismatch" in err or re.search(r"(chiplet_\d\.(fsa|bin)(:\d+)*|streams\.bin): "
                                                                    r"error: ", err) is not None)


def _step_lines(lines: list[str], first_sync: int = 1) -> range:
    """Line indices of the first MoE step: after the dense part's barrier, up to its closing sync."""
    syncs = [i for i, line in enumerate(lines) if line.startswith("sync")]
    return range(syncs[first_sync - 1] + 1, syncs[first_sync])


def _mutations(line: str) -> list[tuple[str, str]]:
    """(field, edited line) for every field of one instruction line."""
    toks = line.split()
    out = []
    for k, tok in enumerate(toks[1:], 1):
        key, eq, value = tok.partition("=")
        if not eq:
            continue
        if key == "dir":
            new = "ccw" if value == "cw" else "cw"
        elif key in ("members", "addr"):
            new = hex(int(value, 16) ^ (1 if key == "members" else 0x40))
        elif value == "*":
            continue
        else:
            new = str(int(value) + 1)
        out.append((key, " ".join(toks[:k] + [f"{key}={new}"] + toks[k + 1:])))
    return out


#: Edits that leave a static FSE-DP program's meaning unchanged (identical metrics asserted):
#: `stride` of a range of one shard names the same single shard.
EQUIVALENT = {("loads", "stride")}


def test_every_field_of_every_stream_instruction_is_checked(fsedpc, programs, tmp_path: Path) -> None:
    base, metrics, _ = programs["fsedp"]
    lines = (base / "chiplet_1.fsa").read_text().splitlines()
    dense = next(i for i, line in enumerate(lines) if line.startswith("dense"))
    targets = [dense, dense + 1, *_step_lines(lines)]
    seen: set[tuple[str, str]] = set()
    for i in targets:
        mnemonic = lines[i].split()[0]
        for key, edited in _mutations(lines[i]):
            if (mnemonic, key) in seen and mnemonic != "stream":
                continue
            seen.add((mnemonic, key))
            code, err, got = _run(fsedpc, programs, tmp_path, "fsedp", 1, lambda ls, i=i, e=edited: ls[:i] + [e] + ls[i + 1:])
            if (mnemonic, key) in EQUIVALENT and " n=1 " in lines[i]:
                assert code == 0 and got == metrics, (mnemonic, key, err)
                continue
            assert _caught(code, err, 1), (lines[i], "->", edited, code, err)
    kinds = {m for m, _ in seen}
    assert kinds >= {"dense", "sync", "table", "loads", "recvs", "sends", "ffns", "frees"}


def test_every_field_of_every_stream_table_row_is_checked(fsedpc, programs, tmp_path: Path) -> None:
    """The shared stream table (streams.bin): every field of every row of the first table edited,
    rows dropped, duplicated and swapped: each caught (a located error naming streams.bin or a
    chiplet's program, a deadlock, or a functional mismatch)."""
    import hashlib

    from fsedp_compiler.isa import OPS, STREAM, decode_tables, encode_tables

    base, metrics, _ = programs["fsedp"]
    tables = decode_tables((base / "streams.bin").read_bytes())
    (layer, step), (lo, hi) = next(iter(tables.index.items()))
    rows = tables.instrs[lo:hi].copy()
    edits = []
    for i in range(len(rows)):
        assert rows["opcode"][i] == STREAM
        for f in OPS[STREAM].fields:
            edited = rows.copy()
            if f.key == "dir":
                edited["x"][i] ^= 1
            elif f.key == "members":
                edited["wide"][i] ^= 1
            else:
                edited[f.column][i] += 1
            edits.append((f"row {i} {f.key}", edited))
        edits.append((f"drop row {i}", np.delete(rows, i)))
        edits.append((f"duplicate row {i}", np.insert(rows, i, rows[i])))
        if i + 1 < len(rows):
            swapped = rows.copy()
            swapped[[i, i + 1]] = swapped[[i + 1, i]]
            edits.append((f"swap rows {i}, {i + 1}", swapped))
    for what, edited in edits:
        d = tmp_path / "edited"
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(base, d)
        data = encode_tables([(l, s, edited if (l, s) == (layer, step) else tables.records(l, s)[1])
                              for l, s in tables.index])
        (d / "streams.bin").write_bytes(data)
        manifest = json.loads((d / "program.json").read_text())
        manifest["files"]["streams.bin"] = hashlib.sha256(data).hexdigest()
        (d / "program.json").write_text(json.dumps(with_digest(manifest)))
        r = fsedpc("simulate", str(d), "--functional", "--metrics", str(tmp_path / "m.json"))
        assert "Traceback" not in r.err
        if r.code == 0 and what.endswith(" dir") and rows["x"][int(what.split()[1])] >= 2:
            # short <-> short-ccw differ only where a home's two ways are equally long: the same program
            assert json.loads((tmp_path / "m.json").read_text()) == metrics, what
            continue
        assert _caught(r.code, r.err, 0), (what, r.code, r.err)
    assert len(edits) > 20


def test_stream_table_errors_are_located(fsedpc, programs, tmp_path: Path) -> None:
    """A bad stream row names streams.bin and the record; a chiplet's table record naming the wrong
    stream count names its .fsa line."""
    import hashlib

    from fsedp_compiler.isa import decode_tables, encode_tables

    base, _, _ = programs["fsedp"]
    d = tmp_path / "edited"
    shutil.copytree(base, d)
    tables = decode_tables((base / "streams.bin").read_bytes())
    (layer, step), (lo, hi) = next(iter(tables.index.items()))
    rows = tables.instrs[lo:hi].copy()
    rows["expert"][1] = 999
    data = encode_tables([(layer, step, rows)] + [(l, s, tables.records(l, s)[1]) for l, s in list(tables.index)[1:]])
    (d / "streams.bin").write_bytes(data)
    manifest = json.loads((d / "program.json").read_text())
    manifest["files"]["streams.bin"] = hashlib.sha256(data).hexdigest()
    (d / "program.json").write_text(json.dumps(with_digest(manifest)))
    r = fsedpc("simulate", str(d))
    assert r.code == 2 and "streams.bin: error: record 1 `stream" in r.err and "expert 999 does not exist" in r.err
    lines = (base / "chiplet_2.fsa").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("table"))
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsedp", 2,
                        lambda ls: ls[:i] + [re.sub(r"n=\d+", "n=99", ls[i])] + ls[i + 1:])
    assert code == 2 and f"chiplet_2.fsa:{i + 1}: error: instruction {i - HEADER_LINES}" in err
    assert "table of 99 streams" in err


def test_wrong_tokens_is_a_located_error(fsedpc, programs, tmp_path: Path) -> None:
    base, _, _ = programs["fsedp"]
    lines = (base / "chiplet_1.fsa").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("ffns"))
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsedp", 1,
                        lambda ls: ls[:i] + [re.sub(r"tokens=\d+", "tokens=1000", ls[i])] + ls[i + 1:])
    assert code == 2 and f"chiplet_1.fsa:{i + 1}: error: instruction {i - HEADER_LINES}" in err
    assert "ffns on tokens=1000, but chiplet 1 holds" in err


def test_every_swap_drop_and_duplicate_in_a_stream_step_is_caught(fsedpc, programs, tmp_path: Path) -> None:
    base, _, _ = programs["fsedp"]
    lines = (base / "chiplet_1.fsa").read_text().splitlines()
    step = list(_step_lines(lines))
    for i in step:
        edits = {"drop": lambda ls, i=i: ls[:i] + ls[i + 1:], "duplicate": lambda ls, i=i: ls[:i + 1] + ls[i:]}
        if i + 1 in step and lines[i] != lines[i + 1]:
            edits["swap"] = lambda ls, i=i: ls[:i] + [ls[i + 1], ls[i]] + ls[i + 2:]
        for what, edit in edits.items():
            code, err, _ = _run(fsedpc, programs, tmp_path, "fsedp", 1, edit)
            assert _caught(code, err, 1), (what, lines[i], code, err)


def test_a_dropped_recvs_deadlocks_or_is_located(fsedpc, programs, tmp_path: Path) -> None:
    base, _, _ = programs["fsedp"]
    for c in range(4):
        lines = (base / f"chiplet_{c}.fsa").read_text().splitlines()
        for i in [k for k, line in enumerate(lines) if line.startswith("recvs")][:3]:
            code, err, _ = _run(fsedpc, programs, tmp_path, "fsedp", c, lambda ls, i=i: ls[:i] + ls[i + 1:])
            assert code == 3 and "waits for a receive posted by chiplet" in err, err


def test_every_record_of_a_dynamic_template_matters(fsedpc, programs, tmp_path: Path) -> None:
    base, _, _ = programs["dynamic"]
    lines = (base / "chiplet_2.fsa").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("foreach"))
    body = range(start - 1, start + 1 + int(lines[start].split("n=")[1]))  # streams, foreach and its records
    for i in body:
        edits = [lambda ls, i=i: ls[:i] + ls[i + 1:], lambda ls, i=i: ls[:i + 1] + ls[i:]]
        if lines[i].startswith("when"):
            for cond in ("home", "inbound", "member", "forward", "visit", "last"):
                if cond not in lines[i]:
                    edits.append(lambda ls, i=i, cond=cond: ls[:i] + [re.sub(r"when +\w+", f"when {cond}", ls[i])]
                                 + ls[i + 1:])
                    break
        for edit in edits:
            code, err, _ = _run(fsedpc, programs, tmp_path, "dynamic", 2, edit)
            assert _caught(code, err, 2), (lines[i], code, err)


@pytest.mark.parametrize("name", ["ep", "tp"])
def test_every_field_of_every_task_instruction_is_checked(fsedpc, programs, tmp_path: Path, name: str) -> None:
    """Every data-carrying field (expert, tile, token group, rows, bytes, port, channel, address,
    id) of the first instruction of each kind: caught. A wait is scheduling, not data: its edits
    are covered below."""
    base, _, _ = programs[name]
    seen: set[tuple[str, str]] = set()
    for c in range(4):
        lines = (base / f"chiplet_{c}.fsa").read_text().splitlines()
        for i in _step_lines(lines):
            mnemonic = lines[i].split()[0]
            if mnemonic == "wait":
                continue
            for key, edited in _mutations(lines[i]):
                if (mnemonic, key) in seen:
                    continue
                seen.add((mnemonic, key))
                code, err, _ = _run(fsedpc, programs, tmp_path, name, c, lambda ls, i=i, e=edited: ls[:i] + [e] + ls[i + 1:])
                assert _caught(code, err, c), (name, lines[i], "->", edited, code, err)
    assert {m for m, _ in seen} >= ({"load", "ffn", "toksend", "tokrecv", "acc"} | ({"reduce"} if name == "tp" else set()))


def test_task_programs_keep_their_order_and_instructions(fsedpc, programs, tmp_path: Path) -> None:
    base, _, _ = programs["ep"]
    lines = (base / "chiplet_1.fsa").read_text().splitlines()
    step = [i for i in _step_lines(lines) if not lines[i].startswith("wait")]
    for i in step:
        code, err, _ = _run(fsedpc, programs, tmp_path, "ep", 1, lambda ls, i=i: ls[:i] + ls[i + 1:])
        assert _caught(code, err, 1), ("drop", lines[i], err)
        code, err, _ = _run(fsedpc, programs, tmp_path, "ep", 1, lambda ls, i=i: ls[:i + 1] + ls[i:])
        assert _caught(code, err, 1), ("duplicate", lines[i], err)
    for a, b in zip(step, step[1:]):
        code, err, _ = _run(fsedpc, programs, tmp_path, "ep", 1,
                            lambda ls, a=a, b=b: ls[:a] + [ls[b]] + ls[a + 1:b] + [ls[a]] + ls[b + 1:])
        assert _caught(code, err, 1), ("swap", lines[a], lines[b], err)


def test_waits_order_tasks(fsedpc, programs, tmp_path: Path) -> None:
    """A wait on a later task is refused; dropping the only wait of an FFN on its tile lets it
    start without the tile (caught)."""
    base, _, _ = programs["dp"]
    for c in range(4):
        lines = (base / f"chiplet_{c}.fsa").read_text().splitlines()
        only = [i for i, line in enumerate(lines) if line.startswith("ffn") and lines[i - 1].startswith("wait")
                and not lines[i - 2].startswith("wait")]
        if only:
            break
    i = only[0]
    code, err, _ = _run(fsedpc, programs, tmp_path, "dp", c, lambda ls: ls[:i - 1] + ls[i:])
    assert code == 2 and "starts but the tile is not in a buffer here (a missing wait?)" in err, err
    later = int(re.search(r"id=(\d+)", lines[i]).group(1)) + 1
    code, err, _ = _run(fsedpc, programs, tmp_path, "dp", c,
                        lambda ls: ls[:i - 1] + [f"wait    id={later}"] + ls[i:])
    assert code == 2 and "which is not an earlier task" in err, err


def test_joins_stand_for_their_waits(fsedpc, programs, tmp_path: Path) -> None:
    """fsdp's FFNs wait on a join of their expert's tiles: a join that waits on nothing lets them
    start without their tiles, a dropped join leaves their waits naming no task, a repeated one
    repeats its id, one of the current layer (`l=*`) is out of its phase (all located errors)."""
    base, _, _ = programs["fsdp"]
    lines = (base / "chiplet_0.fsa").read_text().splitlines()
    step = _step_lines(lines)
    j = next(i for i in step if lines[i].startswith("join"))
    first = j
    while lines[first - 1].startswith("wait"):
        first -= 1
    assert first < j  # the join waits on the tile arrivals
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsdp", 0, lambda ls: ls[:first] + ls[j:])
    assert code == 2 and "starts but the tile is not in a buffer here (a missing wait?)" in err, err
    jid = int(re.search(r"id=(\d+)", lines[j]).group(1))
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsdp", 0, lambda ls: ls[:j] + ls[j + 1:])
    assert code == 2 and f"waits for id {jid}, which no task of layer" in err, err
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsdp", 0, lambda ls: ls[:j + 1] + ls[j:])
    assert _caught(code, err, 0), err
    code, err, _ = _run(fsedpc, programs, tmp_path, "fsdp", 0,
                        lambda ls: ls[:j] + [ls[j].replace("l=0", "l=*")] + ls[j + 1:])
    assert code == 2 and "join tagged l=* s=0 in the phase of l=0 s=0" in err, err


def test_opcode_coverage_of_the_suite() -> None:
    """The kinds the suite edits cover every instruction of static and task programs."""
    static = {"dense", "sync", "table", "stream", "loads", "recvs", "sends", "ffns", "frees"}
    tasks = {"load", "send", "recv", "toksend", "tokrecv", "reduce", "ffn", "acc", "free", "wait", "join"}
    dynamic = {"streams", "foreach", "when", "where", "load", "recv", "send", "ffn", "free"}
    leftover = set(OPCODE) - static - tasks - dynamic - {"nop", "halt", "mask"}
    assert leftover == set(), leftover
    assert all(OPS[OPCODE[m]].fields or m in ("nop", "halt") for m in static | tasks)


# --------------------------------------------------------------------------- program.json itself


def _copy(programs, tmp: Path, name: str) -> Path:
    d = tmp / f"copy-{name}"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(programs[name][0], d)
    return d


def _simulate(fsedpc, programs, d: Path, name: str, tmp: Path):
    args = ["simulate", str(d), "--metrics", str(tmp / "m.json")]
    if name == "dynamic":
        args += ["--trace", str(programs[name][2])]
    return fsedpc(*args)


#: (program, dotted field, new value): each is a change of meaning the schema alone accepts.
MANIFEST_EDITS = [
    ("fsedp", "target.link.gbps", 1.0),
    ("fsedp", "target.link.latency_ns", 0.0),
    ("fsedp", "target.chiplet.sram_mib", 1.0),
    ("fsedp", "target.chiplet.tops.bf16", 100.0),
    ("fsedp", "target.name", "other"),
    ("fsedp", "layers.0.shards", 8),
    ("fsedp", "layers.0.buffers", 3),
    ("fsedp", "layers.0.order", "id"),
    ("fsedp", "dense.0.flops_per_token", 1),
    ("fsedp", "steps", 2),
    ("fsedp", "tokens", 4),
    ("fsedp", "num_layers", 5),
    ("fsedp", "model", "other"),
    ("fsedp", "edited", True),
    ("fsedp", "strategy", "fsedp-fullring"),
    ("fsedp", "programs.0.instructions", 1),
    ("fsedp", "files.layout.npz", "0" * 64),
    ("ep", "layers.0.hydra_skip_single", True),
    ("dynamic", "target.link.gbps", 1.0),
    ("dynamic", "layers.0.direction", "cw"),
    ("dynamic", "mode", "static"),
]


def _set_dotted(doc: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    if dotted.startswith("files."):
        parts = ["files", dotted[len("files."):]]
    obj = doc
    for p in parts[:-1]:
        obj = obj[int(p)] if isinstance(obj, list) else obj[p]
    obj[parts[-1]] = value


@pytest.mark.parametrize("name,field,value", MANIFEST_EDITS, ids=[f"{n}:{f}" for n, f, _ in MANIFEST_EDITS])
def test_an_edited_program_json_field_is_refused(fsedpc, programs, tmp_path: Path, name: str, field: str,
                                                  value) -> None:
    """Editing a meaning-carrying field of program.json is exit 2 naming program.json and the
    digest check, for `simulate` and for `asm` (which must not bless it by re-digesting)."""
    d = _copy(programs, tmp_path, name)
    doc = json.loads((d / "program.json").read_text())
    _set_dotted(doc, field, value)
    (d / "program.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    before = (d / "program.json").read_bytes()
    r = _simulate(fsedpc, programs, d, name, tmp_path)
    assert r.code == 2 and "program.json: error: manifest_sha256: program.json's digest check failed" in r.err, r.err
    assert r.err.count("\n") == 1 and not (tmp_path / "m.json").exists()
    r = fsedpc("asm", str(d))
    assert r.code == 2 and "digest check failed" in r.err, r.err
    assert (d / "program.json").read_bytes() == before


@pytest.mark.parametrize("name", ["fsedp", "dynamic", "ep"])
def test_an_untouched_or_reformatted_program_json_runs(fsedpc, programs, tmp_path: Path, name: str) -> None:
    """The digest is over canonical JSON: re-indenting or reordering program.json changes nothing."""
    d = _copy(programs, tmp_path, name)
    r = _simulate(fsedpc, programs, d, name, tmp_path)
    assert r.code == 0, r.err
    metrics = json.loads((tmp_path / "m.json").read_text())
    doc = json.loads((d / "program.json").read_text())
    (d / "program.json").write_text(json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")))
    r = _simulate(fsedpc, programs, d, name, tmp_path)
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "m.json").read_text()) == metrics


def test_a_program_json_without_its_digest_is_refused(fsedpc, programs, tmp_path: Path) -> None:
    d = _copy(programs, tmp_path, "fsedp")
    doc = json.loads((d / "program.json").read_text())
    del doc["manifest_sha256"]
    (d / "program.json").write_text(json.dumps(doc))
    r = _simulate(fsedpc, programs, d, "fsedp", tmp_path)
    assert r.code == 2 and "program.json: error: manifest_sha256: missing" in r.err and "recompile" in r.err, r.err


def test_asm_re_digests_and_marks_edited(fsedpc, programs, tmp_path: Path) -> None:
    """`asm` is the sanctioned edit: the reassembled program says `edited` and passes the digest
    check; flipping `edited` back by hand afterwards does not."""
    from fsedp_compiler.files.digest import manifest_digest

    d = _copy(programs, tmp_path, "fsedp")
    assert fsedpc("asm", str(d)).code == 0
    doc = json.loads((d / "program.json").read_text())
    assert doc["edited"] is True and doc["manifest_sha256"] == manifest_digest(doc)
    assert _simulate(fsedpc, programs, d, "fsedp", tmp_path).code == 0
    doc["edited"] = False
    (d / "program.json").write_text(json.dumps(doc))
    r = _simulate(fsedpc, programs, d, "fsedp", tmp_path)
    assert r.code == 2 and "digest check failed" in r.err, r.err
