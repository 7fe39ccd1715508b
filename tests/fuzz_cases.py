"""Cases of the fuzz harness (tests/fuzz.py): per input format, seeded mutations of a seed file
(the generic edits of fuzz_mutations.py, plus format-aware ones of TOML, JSON, npz arrays and meta,
MLIR op values), each marked invalid by construction, a deadlock, or of unknown validity."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz_mutations import (ANY, DEADLOCK, DIGITS, INVALID, bytes_mutation, deep_dump, depth_ok, dump_json,
                            dump_toml, dump_toml_inline, set_at, structured_mutation)

KINDS = ("mlir", "final", "toml", "npz", "jsonl", "hf", "manifest", "bin", "fsa", "tables", "sweep", "dmanifest",
         "dbin", "deadlock")


def sweep_seed(seeds: Path) -> dict:
    """A tiny sweep spec over the seeds (absolute paths: the case directory holds the spec alone)."""
    return {
        "name": "fuzz", "description": "a tiny sweep", "model": str(seeds / "model.mlir"), "moe_layers": 1,
        "dense": False, "steps": 1, "seed": 0, "buffers": 6, "strategies": ["fsedp", "ep"],
        "tokens": {"start": 4, "stop": 16, "factor": 4},
        "grid": [
            {"name": "systems", "target": ["paper-2x2", str(seeds / "target.toml")],
             "routing": ["uniform", {"name": "skewed", "skew": "zipf:1.2", "locality": 0.5}],
             "set": {"link.gbps": [64, 288]}},
            {"name": "trace", "target": "paper-2x2", "dtype": "int8", "moe_layers": 2, "routing": {"trace": str(seeds / "trace.npz")}},
        ],
    }


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One mutated input: where it goes, the commands that read it, whether it is invalid."""

    kind: str
    mutation: str
    files: dict[str, bytes]
    """relative path in the case directory -> bytes (a program directory is copied first)"""
    commands: list[list[str]]
    """argv lists; {case} is the case directory, {out} the (empty) output directory"""
    validity: str
    names: tuple[str, ...]
    """what an error must name (a file name)"""
    copy_prog: bool = False
    prog: str = "prog"
    """the seed program directory copied first: `prog` (static) or `dprog` (dynamic)"""


def _cmds_for(kind: str, c: Path) -> list[list[str]]:
    m, t = str(c / "model.mlir"), str(c / "trace.npz")
    return {
        "mlir": [["inspect", "{case}/model.mlir"],
                 ["compile", "{case}/model.mlir", "--target", "paper-2x2", "-o", "{out}/p"],
                 ["opt", "{case}/model.mlir", "-p", "attach-target{target=paper-2x2}", "-o", "{out}/o.mlir"]],
        "final": [["opt", "{case}/final.mlir", "-o", "{out}/o.mlir"],
                  ["inspect", "{case}/final.mlir"]],
        "toml": [["targets", "{case}/target.toml"],
                 ["compile", m, "--target", "{case}/target.toml", "-o", "{out}/p"]],
        "npz": [["trace", "stats", "{case}/trace.npz"],
                ["compile", m, "--target", "paper-2x2", "--trace", "{case}/trace.npz", "-o", "{out}/p"]],
        "jsonl": [["trace", "import", "{case}/routing.jsonl", "--model", str(c / "sample.mlir"), "--chiplets", "2",
                   "--tokens-per-step", "2", "-o", "{out}/t.npz"]],
        "hf": [["import-hf", "{case}/config.json", "--layers", "2", "-o", "{out}/m.mlir"],
               ["import-hf", "{case}/config.json", "-o", "{out}/m.mlir"]],
        "manifest": [["simulate", "{case}/prog", "--metrics", "{out}/m.json"]],
        "bin": [["simulate", "{case}/prog", "--functional"], ["disasm", "{case}/prog/chiplet_1.bin"]],
        "fsa": [["asm", "{case}/prog"]],
        "sweep": [["sweep", "{case}/spec.toml", "--dry-run"]],
        "dmanifest": [["simulate", "{case}/dprog", "--trace", t, "--metrics", "{out}/m.json"]],
        "dbin": [["simulate", "{case}/dprog", "--trace", t, "--functional"],
                 ["disasm", "{case}/dprog/chiplet_1.bin"]],
        "deadlock": [["simulate", "{case}/prog", "--metrics", "{out}/m.json"]],
        "tables": [["simulate", "{case}/prog", "--functional"], ["disasm", "{case}/prog/streams.bin"]],
    }[kind]


def _mlir_cases(rng: random.Random, text: str) -> tuple[str, str, str]:
    """A number, keyword or attribute of a `moe` op replaced, or a blind text edit."""
    lines = text.split("\n")
    numbered = [i for i, ln in enumerate(lines) if re.search(r"moe\.(layer|dense) \d", ln)]
    r = rng.random()
    if r < 0.5 and numbered:
        i = rng.choice(numbered)
        tokens = lines[i].split(" ")
        spots = [k for k, tok in enumerate(tokens) if tok.isdigit()]
        k = rng.choice(spots)
        name = tokens[k - 1] if k > 0 else "?"
        new, validity = rng.choice([("0", ANY), ("-1", INVALID), (str(2**63), INVALID), (str(2**64 + 5), INVALID),
                                    (DIGITS[:40], INVALID), ("1e9", INVALID), ("0x10", ANY), ("1000000000", ANY),
                                    ("nan", INVALID), ("x", INVALID)])
        if name in ("experts", "top_k", "d_model", "d_ffn") and new == "0":
            validity = INVALID
        tokens[k] = new
        lines[i] = " ".join(tokens)
        return f"{name}={new}", "\n".join(lines), validity
    if r < 0.6 and numbered:
        i = rng.choice(numbered)
        word = rng.choice(["swiglu", "bf16", "attention", "experts", "top_k"])
        if word in lines[i]:
            lines[i] = lines[i].replace(word, rng.choice(["bogus", "", '"x'] if word != "attention" else ['"x', "{"]), 1)
            return f"replace {word}", "\n".join(lines), INVALID
    if r < 0.7:
        j = text.find('"')
        if j >= 0:
            return "unterminated string", text[: j + 1] + "x" * 40 + "\n" + text[text.find("\n", j) + 1:], INVALID
    kind, data = bytes_mutation(rng, text.encode())
    return kind, data.decode("utf-8", "replace"), ANY


def _final_case(rng: random.Random, text: str) -> tuple[str, str, str]:
    """Numbers in the compiled module's ops (dataflow opcodes, arrays) replaced, or blind edits."""
    if rng.random() < 0.6:
        spots = [m.span() for m in re.finditer(r"(?<![\w.])\d+(?![\w.])", text)]
        a, b = rng.choice(spots)
        new = rng.choice(["200", "-5", "99999999999", str(2**40), "0", "3"])
        return f"number@{a}={new}", text[:a] + new + text[b:], ANY
    kind, data = bytes_mutation(rng, text.encode())
    return kind, data.decode("utf-8", "replace"), ANY


TARGET_REQUIRED = {"name", "chiplets", "topology", "chiplet", "link", "sram_mib", "gbps", "latency_ns",
                   "dram_gbps_per_channel"}


def _npz_case(rng: random.Random, seed: Path) -> tuple[str, bytes, str]:
    """Arrays of wrong dtype, shape or values; meta fields mutated; a header claiming 10^12 elements."""
    import io

    import numpy as np

    with np.load(seed) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    r = rng.random()
    validity = INVALID
    if r < 0.12:
        name = rng.choice(["experts", "weights", "token_chiplet"])
        arrays[name] = arrays[name].astype(rng.choice([np.float64, np.int64, np.uint8, np.complex64, np.bool_]))
        what = f"dtype {name} {arrays[name].dtype}"
        validity = ANY if arrays[name].dtype == np.int64 else INVALID
    elif r < 0.24:
        name = rng.choice(["experts", "weights", "token_chiplet", "meta"])
        a = arrays[name]
        arrays[name] = rng.choice([a.reshape(-1), a[..., None], a.reshape(-1)[:1], np.zeros((0,) * max(a.ndim, 1), a.dtype)])
        what = f"shape {name} {arrays[name].shape}"
        validity = ANY if arrays[name].shape == a.shape else INVALID
    elif r < 0.4:
        name = rng.choice(["experts", "weights", "token_chiplet"])
        a = arrays[name].copy()
        idx = tuple(rng.randrange(s) for s in a.shape)
        if name == "weights":
            a[idx] = rng.choice([np.nan, np.inf, -1.0, 1e38])
            validity = ANY if a[idx] == np.float32(1e38) else INVALID
        else:
            a[idx] = rng.choice([-1, 8, 2**31 - 1, 99])
            if name == "experts" and rng.random() < 0.3:  # a token picking the same expert twice
                a[idx[:-1]] = a[idx[:-1]][0]
        arrays[name] = a
        what = f"value {name}{list(idx)}={a[idx]}"
    elif r < 0.75:
        what, meta2, validity = structured_mutation(
            rng, meta, lambda p: p[0] in ("format", "version", "chiplets", "num_experts", "top_k", "tokens", "steps",
                                          "layers"),
            lambda p: p[0] in ("format", "version"))
        arrays["meta"] = np.array(json.dumps(meta2, allow_nan=True, default=str) if depth_ok(meta2)
                                  else deep_dump(meta2))
        if any(w in what for w in ("other", "zero", "big", "huge-float", "tiny")):
            validity = ANY
    elif r < 0.82:
        name = rng.choice(list(arrays))
        del arrays[name]
        what = f"missing {name}"
    else:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        if rng.random() < 0.5:  # an npy header claiming a giant shape
            k = data.find(b"'shape': (")
            end = data.find(b")", k)
            data = data[: k + 10] + b"1000000, 1000000" + data[end:]
            return "header shape 10^12", _fix_zip(data), INVALID
        kind, data = bytes_mutation(rng, data)
        return kind, data, ANY
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return what, buf.getvalue(), validity


def _fix_zip(data: bytes) -> bytes:
    """Re-zip the members of a zip whose member bytes were edited in place (CRCs recomputed)."""
    import io
    import zipfile

    out = io.BytesIO()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                with src.open(info) as member:
                    member._expected_crc = None  # type: ignore[attr-defined]
                    dst.writestr(info.filename, member.read())
    except Exception:
        return data
    return out.getvalue()


def make_case(rng: random.Random, kind: str, seeds: Path) -> Case:
    """One seeded mutation of the seed of `kind`."""
    names: tuple[str, ...]
    if kind == "mlir":
        what, text, validity = _mlir_cases(rng, (seeds / "model.mlir").read_text())
        return Case(kind, what, {"model.mlir": text.encode()}, _cmds_for(kind, seeds), validity, ("model.mlir",))
    if kind == "final":
        what, text, validity = _final_case(rng, (seeds / "final.mlir").read_text())
        return Case(kind, what, {"final.mlir": text.encode()}, _cmds_for(kind, seeds), validity, ("final.mlir",))
    if kind == "toml":
        import tomllib

        data = (seeds / "target.toml").read_bytes()
        if rng.random() < 0.25:
            what, new = bytes_mutation(rng, data)
            validity = ANY
        else:
            obj = tomllib.loads(data.decode())
            what, obj, validity = structured_mutation(
                rng, obj, lambda p: not (p[0] == "description"), lambda p: p[-1] in TARGET_REQUIRED)
            field = what.split(" ")[-1]
            if what.startswith("fraction") and field not in ("chiplets", "chiplet.dram_channels") and \
                    "macs_per_cycle" not in field:
                validity = ANY  # a float field written as an integer in the seed
            if what.startswith("fraction") and "macs_per_cycle" in field:
                validity = ANY  # a rate, not a count
            if what.startswith("list") and field in ("dram_at", "ring", "links"):
                validity = ANY
            if what.startswith(("string ", "other-string ", "empty ")) and field == "topology":
                validity = INVALID
            if what in ("empty name", "remove name"):  # a target must be named (issue 14)
                validity = INVALID
            if re.search(r"^(big|zero|tiny|other|huge-float|other-string|empty|flip) ", what) and \
                    what.split(" ")[1] not in ("chiplets", "dram_channels", "topology", "chiplet.dram_channels",
                                               "name"):
                validity = ANY
            new = dump_toml(obj)
        # a valid target too small for the model is the model's error (compile names the layer)
        return Case(kind, what, {"target.toml": new}, _cmds_for(kind, seeds), validity, ("target.toml", "model.mlir"))
    if kind == "npz":
        what, data, validity = _npz_case(rng, seeds / "trace.npz")
        return Case(kind, what, {"trace.npz": data}, _cmds_for(kind, seeds), validity, ("trace.npz",))
    if kind == "jsonl":
        lines = (seeds / "routing.jsonl").read_text().splitlines()
        if rng.random() < 0.3:
            what, data = bytes_mutation(rng, "\n".join(lines).encode())
            return Case(kind, what, {"routing.jsonl": data}, _cmds_for(kind, seeds), ANY, ("routing.jsonl",))
        i = rng.randrange(len(lines))
        rec = json.loads(lines[i])
        what, rec, validity = structured_mutation(
            rng, rec, lambda p: p[0] in ("layer", "experts", "weights"), lambda p: False)
        if re.match(r"(zero|tiny|big|other|huge-float|remove) ", what) or "weights" in what and "huge" in what or \
                what == "huge-int layer":  # a layer the model lacks: dropped and reported
            validity = ANY
        lines[i] = deep_dump(rec) if not depth_ok(rec) else json.dumps(rec)
        return Case(kind, f"line {i + 1}: {what}", {"routing.jsonl": "\n".join(lines).encode()},
                    _cmds_for(kind, seeds), validity, ("routing.jsonl",))
    if kind == "hf":
        cfg = json.loads((seeds / "config.json").read_text())
        if rng.random() < 0.2:
            what, data = bytes_mutation(rng, json.dumps(cfg, indent=2).encode())
            return Case(kind, what, {"config.json": data}, _cmds_for(kind, seeds), ANY, ("config.json",))
        key = rng.choice(list(cfg))
        critical = ("hidden_size", "num_hidden_layers", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                    "num_attention_heads", "num_key_value_heads", "head_dim", "model_type", "architectures")
        what, cfg, validity = structured_mutation(rng, {key: cfg[key], **{k: v for k, v in cfg.items() if k != key}},
                                                  lambda p: p[0] in critical, lambda p: p[0] in critical[:5])
        if re.match(r"(zero|big|other|huge-float|other-string|empty|remove|string|number) ", what) and \
                "model_type" in what or "architectures" in what:
            validity = ANY
        if re.match(r"(big|other|huge-float) ", what) and what.split(" ")[1] != "num_hidden_layers":
            validity = ANY
        if what.startswith("huge-int"):
            cfg[what.split(" ")[1].split(".")[0]] = "__HUGE__"
        return Case(kind, what, {"config.json": dump_json(cfg, rng)}, _cmds_for(kind, seeds), validity,
                    ("config.json",))
    if kind == "sweep":
        return _sweep_case(rng, seeds)
    if kind in ("manifest", "dmanifest"):
        return _manifest_case(rng, kind, seeds, "prog" if kind == "manifest" else "dprog")
    if kind in ("bin", "dbin"):
        name = "prog" if kind == "bin" else "dprog"
        prog = seeds / name
        data = (prog / "chiplet_1.bin").read_bytes()
        what, new = bytes_mutation(rng, data)
        manifest = json.loads((prog / "program.json").read_text())
        import hashlib

        manifest["programs"][1]["bin_sha256"] = hashlib.sha256(new).hexdigest()  # past the hash: the decoder
        return Case(kind, what, {f"{name}/chiplet_1.bin": new, f"{name}/program.json": _signed(manifest)},
                    _cmds_for(kind, seeds), ANY, (f"/{name}",), copy_prog=True, prog=name)
    if kind == "deadlock":
        return _deadlock_case(rng, seeds)
    prog = seeds / "prog"
    if kind == "tables":  # the shared stream tables, past their hash: the table decoder and the machine
        data = (prog / "streams.bin").read_bytes()
        what, new = bytes_mutation(rng, data)
        manifest = json.loads((prog / "program.json").read_text())
        import hashlib

        manifest["files"]["streams.bin"] = hashlib.sha256(new).hexdigest()
        return Case(kind, what, {"prog/streams.bin": new, "prog/program.json": _signed(manifest)},
                    _cmds_for(kind, seeds), ANY, ("/prog",), copy_prog=True)
    data = (prog / "chiplet_1.fsa").read_bytes()
    what, new = bytes_mutation(rng, data)
    return Case(kind, what, {"prog/chiplet_1.fsa": new}, _cmds_for(kind, seeds), ANY, ("/prog",),
                copy_prog=True)


def _signed(manifest: dict) -> bytes:
    """program.json text with its digest recomputed (as `fsedpc asm` does), so that a mutation
    reaches the checks behind the digest check."""
    from fsedp_compiler.files.digest import with_digest

    return json.dumps(with_digest(manifest), indent=2).encode()


def _manifest_case(rng: random.Random, kind: str, seeds: Path, name: str) -> Case:
    """A mutated program.json: most re-digested (the schema and cross-field checks behind the
    digest), some not (the digest check itself: then any change of meaning is invalid)."""
    from fsedp_compiler.files.digest import canonical_json, manifest_digest

    prog = seeds / name
    cmds, names = _cmds_for(kind, seeds), (f"/{name}",)
    original = json.loads((prog / "program.json").read_text())
    if rng.random() < 0.15:
        what, data = bytes_mutation(rng, (prog / "program.json").read_bytes())
        return Case(kind, what, {f"{name}/program.json": data}, cmds, ANY, names, copy_prog=True, prog=name)
    soft = ("model", "description", "name", "edited", "kind", "hydra_skip_single")
    what, manifest, validity = structured_mutation(
        rng, original, lambda p: not any(s in p for s in soft),
        lambda p: p[-1] not in ("description", "strategy", "baseline", "hydra_skip_single", "order", "direction",
                                "trajectory", "rings", "kind", "unknown_field_x") and not isinstance(p[-1], int))
    if re.match(r"(other|zero|tiny|big|huge-float|other-string|empty) ", what) and \
            not re.search(r"\b(format|version|mode|strategy|dtype|activation|bin|fsa|trace)$", what):
        validity = ANY
    if what.startswith("unknown field") or (what.startswith(("string ", "other-string ", "empty ")) and re.search(
            r"\b(format|mode|strategy|dtype|activation|bin|fsa|trace|baseline|order|direction|trajectory)$", what)):
        validity = INVALID
    if re.match(r"remove files\.(final\.mlir|unknown_field_x)$", what):
        validity = ANY  # final.mlir is for people; the machine does not read it
    if what.endswith("manifest_sha256"):
        validity = INVALID  # the digest itself replaced
    signed = rng.random() < 0.8 and not what.endswith("manifest_sha256")
    if signed:
        from fsedp_compiler.files.digest import DIGEST_FIELD

        try:
            manifest[DIGEST_FIELD] = manifest_digest(json.loads(json.dumps(manifest)))
            what += " (re-digested)"
        except (ValueError, RecursionError, TypeError):  # NaN or a deep nest: no digest can cover it
            signed = False
    if not signed:
        try:
            same = canonical_json(manifest) == canonical_json(original)
        except (ValueError, RecursionError, TypeError):
            same = False
        validity = ANY if same else INVALID  # any change of meaning fails the digest check
    if what.startswith("huge-int"):
        _set_path(manifest, what.split(" ")[1], "__HUGE__")
    return Case(kind, what, {f"{name}/program.json": dump_json(manifest, rng)}, cmds, validity, names,
                copy_prog=True, prog=name)


def _sweep_case(rng: random.Random, seeds: Path) -> Case:
    """A mutated tiny sweep spec given to `fsedpc sweep --dry-run` (which validates it, expands the
    points and resolves every model, target and trace). Blind edits, or a field mutated."""
    spec = sweep_seed(seeds)
    cmds, names = _cmds_for("sweep", seeds), ("spec.toml",)
    if rng.random() < 0.2:
        what, data = bytes_mutation(rng, dump_toml_inline(spec))
        return Case("sweep", what, {"spec.toml": data}, cmds, ANY, names)
    what, spec, validity = structured_mutation(rng, spec, lambda p: True,
                                               lambda p: p[-1] in ("start", "stop", "factor", "model"))
    mutation, _, field = what.partition(" ")
    last = field.split(".")[-1]
    in_set = ".set." in f".{field}."
    free = last in ("name", "description")  # names and descriptions are free text
    numeric = mutation in ("negative", "nan", "inf", "-inf", "huge-int", "huge-float", "zero", "big", "tiny", "other",
                           "bool", "fraction")
    if free:
        validity = INVALID if mutation in ("number", "list", "table", "null", "deep") else ANY
    elif mutation in ("null", "table", "string", "number", "bool", "nan", "inf", "-inf", "negative", "huge-float",
                      "huge-int", "other-string", "empty", "int"):
        validity = INVALID  # a wrong type, a non-finite or out-of-range number, an unknown name or path
    elif mutation == "deep" or what.startswith("unknown field"):
        validity = INVALID
    elif mutation == "fraction":  # a range's bounds may be fractional (its values need not be)
        validity = ANY if in_set or last in ("start", "stop", "step", "factor") else INVALID
    elif mutation == "remove":
        validity = INVALID if last in ("start", "stop", "factor") else ANY
    elif numeric or mutation in ("list", "flip"):
        validity = ANY
    if mutation in ("huge-float", "huge-int") and last == "factor":
        validity = ANY  # the second value is past stop: a range of one value
    if mutation == "huge-int" and in_set:
        validity = INVALID
    return Case("sweep", what, {"spec.toml": dump_toml_inline(spec)}, cmds, validity, names)


def _deadlock_case(rng: random.Random, seeds: Path) -> Case:
    """A static program in which one chiplet posts too few receives for a stream (a `recvs` dropped
    or its count lowered), reassembled as `fsedpc asm` would: its neighbour's sends wait forever.
    The machine must stop with exit 3 and a report naming the chiplets and what waits on what."""
    from fsedp_compiler.files.digest import with_digest
    from fsedp_compiler.isa import encode, parse_text, sha256_hex

    prog = seeds / "prog"
    c = rng.randrange(4)
    lines = (prog / f"chiplet_{c}.fsa").read_text().splitlines()
    spots = [i for i, line in enumerate(lines) if line.startswith("recvs")]
    i = rng.choice(spots)
    n = int(re.search(r" n=(\d+)", lines[i]).group(1))
    if n > 1 and rng.random() < 0.5:
        new = max(1, n - rng.randrange(1, n))
        lines[i] = re.sub(r" n=\d+", f" n={new}", lines[i])
        what = f"chiplet {c} line {i + 1}: recvs n={n} -> {new}"
    else:
        del lines[i]
        what = f"chiplet {c} line {i + 1}: recvs dropped"
    text = "\n".join(lines) + "\n"
    program = parse_text(text, f"chiplet_{c}.fsa")
    data = encode(program)
    manifest = json.loads((prog / "program.json").read_text())
    manifest["programs"][c].update(bin_sha256=sha256_hex(data), fsa_sha256=sha256_hex(text.encode()),
                                   instructions=len(program))
    manifest["edited"] = True
    files = {f"prog/chiplet_{c}.fsa": text.encode(), f"prog/chiplet_{c}.bin": data,
             "prog/program.json": json.dumps(with_digest(manifest), indent=2).encode()}
    return Case("deadlock", what, files, _cmds_for("deadlock", seeds), DEADLOCK, ("/prog",), copy_prog=True)


def _set_path(obj: Any, dotted: str, value: Any) -> None:
    parts: list[Any] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    try:
        set_at(obj, tuple(parts), value)
    except (KeyError, IndexError, TypeError):
        pass


def seed_case(kind: str, seeds: Path) -> Case:
    """The unmutated seed of `kind`: every command must accept it (else the mutations test nothing);
    the deadlock kind's seed is the program it mutates."""
    files = {"mlir": "model.mlir", "final": "final.mlir", "toml": "target.toml", "npz": "trace.npz",
             "jsonl": "routing.jsonl", "hf": "config.json"}
    if kind == "sweep":
        return Case(kind, "seed", {"spec.toml": dump_toml_inline(sweep_seed(seeds))}, _cmds_for(kind, seeds), ANY,
                    ("spec.toml",))
    rel = files.get(kind)
    prog = "dprog" if kind in ("dmanifest", "dbin") else "prog"
    return Case(kind, "seed", {rel: (seeds / rel).read_bytes()} if rel else {}, _cmds_for(kind, seeds), ANY,
                (rel or f"/{prog}",), copy_prog=rel is None, prog=prog)


def cases(seeds: Path, n: int, seed: int, kinds: tuple[str, ...] = KINDS) -> list[Case]:
    """`n` cases spread evenly over `kinds`, the same for the same seed."""
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        out.append(make_case(random.Random(f"{seed}:{i}:{kind}"), kind, seeds))
    return out
