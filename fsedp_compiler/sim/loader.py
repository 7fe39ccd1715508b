"""Read an `fsedpc compile` output directory: program.json, every chiplet's .bin, checked."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from fsedp_compiler.backends.emit import MANIFEST_FORMAT, chiplet_ports
from fsedp_compiler.backends.isa import Program, decode
from fsedp_compiler.errors import FsedpError
from fsedp_compiler.model import DenseSpec, MoeLayerSpec
from fsedp_compiler.ring import Ring
from fsedp_compiler.shardplan import ShardPlan
from fsedp_compiler.target import Target, target_from_json


@dataclass
class Loaded:
    """A compiled program: its manifest, target, per-chiplet programs and per-layer plans."""

    outdir: str
    manifest: dict[str, Any]
    target: Target
    programs: list[Program]
    specs: dict[int, MoeLayerSpec] = field(default_factory=dict)
    plans: dict[int, ShardPlan] = field(default_factory=dict)
    dense: dict[int, DenseSpec] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return str(self.manifest["mode"])

    def manifest_layer(self, index: int) -> dict[str, Any]:
        return next(entry for entry in self.manifest["layers"] if entry["index"] == index)

    @property
    def ring(self) -> Ring:
        return Ring(self.target.ring)


def _field(manifest: dict[str, Any], key: str, path: str) -> Any:
    if key not in manifest:
        raise FsedpError("missing field in the manifest", path=path, field=key)
    return manifest[key]


def load_outdir(outdir: str) -> Loaded:
    """Load and verify: manifest format, file hashes, binary well-formedness, ports vs target."""
    path = os.path.join(outdir, "program.json")
    if not os.path.isdir(outdir):
        raise FsedpError("not a directory; give the output directory of `fsedpc compile`", path=outdir)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise FsedpError("no program.json here; give the output directory of `fsedpc compile`",
                         path=outdir) from None
    except json.JSONDecodeError as err:
        raise FsedpError(err.msg, path=path, line=err.lineno, col=err.colno) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise FsedpError(f"not an fsedpc program manifest (format {manifest.get('format')!r})", path=path,
                         field="format")
    try:
        target = target_from_json(_field(manifest, "target", path))
    except (KeyError, TypeError, ValueError) as err:
        raise FsedpError(f"malformed target description ({err})", path=path, field="target") from None
    programs: list[Program] = []
    for entry in _field(manifest, "programs", path):
        bin_path = os.path.join(outdir, entry["bin"])
        try:
            with open(bin_path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise FsedpError("listed in program.json but missing", path=bin_path) from None
        if hashlib.sha256(data).hexdigest() != entry["bin_sha256"]:
            raise FsedpError("SHA-256 does not match program.json (edited or truncated after compiling?)",
                             path=bin_path)
        program = decode(data, bin_path)
        if program.chiplet != entry["chiplet"] or not 0 <= program.chiplet < target.num_chiplets:
            raise FsedpError(f"program is for chiplet {program.chiplet}, the manifest says {entry['chiplet']}",
                             path=bin_path)
        expected = chiplet_ports(target, program.chiplet)
        if program.ports != expected:
            raise FsedpError(f"ports {list(program.ports)} do not match {target.name}'s links of chiplet "
                             f"{program.chiplet} ({list(expected)})", path=bin_path)
        programs.append(program)
    programs.sort(key=lambda p: p.chiplet)
    if [p.chiplet for p in programs] != list(range(target.num_chiplets)):
        raise FsedpError(f"needs one program per chiplet 0..{target.num_chiplets - 1}", path=path, field="programs")
    loaded = Loaded(outdir, manifest, target, programs)
    for layer in _field(manifest, "layers", path):
        spec = MoeLayerSpec(**{k: layer[k] for k in MoeLayerSpec.__dataclass_fields__})
        loaded.specs[spec.index] = spec
        loaded.plans[spec.index] = ShardPlan(spec, layer["shards"], layer["buffers"],
                                             tuple(tuple(c) for c in layer["channels"]))
    for d in manifest.get("dense", []):
        loaded.dense[d["index"]] = DenseSpec(**d)
    return loaded
