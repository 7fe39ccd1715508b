"""Read a program directory (`fsedpc compile -o OUTDIR`) as untrusted input, all checked.

program.json is validated against its schema (`manifest.py`) and its cross-field rules; every
file it names must be a regular file inside the directory whose SHA-256 matches; each `.bin` is
decoded and must fit its chiplet (ports, DRAM channels); an `.fsa` edited after compiling is
refused until `fsedpc asm` reassembles it; the DRAM layout and (static) the bundled trace are
read and checked against the layers. Nothing here knows how the compiler made the program.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.scheduler import Policy
from fsedp_compiler.fsedp.shardplan import ShardPlan, dram_channels
from fsedp_compiler.inputs.model import DTYPE_BYTES, MATRICES, DenseSpec, MoeLayerSpec
from fsedp_compiler.inputs.target import ChipletParams, CostParams, LinkParams, Target
from fsedp_compiler.inputs.topology import ring_problem, topology_problem
from fsedp_compiler.inputs.traces import RoutingTrace, load_trace
from fsedp_compiler.isa import TABLES_FILE, Program, StreamTables, decode, decode_tables, format_record, header_size, neighbours, parse_text_lines, sha256_hex

if TYPE_CHECKING:  # the schema (pydantic) is imported when a directory is loaded, not before
    from fsedp_compiler.sim.manifest import Manifest

MANIFEST = "program.json"
LAYOUT = "layout.npz"
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class Layout:
    """Where tile j of expert e of one layer lives: chiplet, channel, address ([experts, tiles])."""

    chiplet: np.ndarray
    channel: np.ndarray
    addr: np.ndarray
    tile_bytes: np.ndarray

    @cached_property
    def rows(self) -> list[tuple[list[int], list[int], list[int]]]:
        """Per expert, (chiplets, channels, addresses) of its tiles as Python lists (for look-ups)."""
        return list(zip(self.chiplet.tolist(), self.channel.tolist(), self.addr.tolist()))

    @cached_property
    def rows_bytes(self) -> list[int]:
        return self.tile_bytes.tolist()


@dataclass
class LayerDesc:
    """One MoE layer as the machine sees it: the model layer, its tiles and buffers, its image."""

    spec: MoeLayerSpec
    plan: ShardPlan
    layout: Layout
    policy: Policy | None
    """FSE-DP layers: the controller's scheduler policy (dynamic mode)."""
    baseline: str | None


@dataclass
class Loaded:
    """A checked program directory."""

    outdir: str
    manifest: Manifest
    target: Target
    programs: list[Program]
    layers: dict[int, LayerDesc] = field(default_factory=dict)
    dense: dict[int, DenseSpec] = field(default_factory=dict)
    trace: RoutingTrace | None = None
    """The routing a static program was compiled for (bundled)."""
    rings: tuple[tuple[int, ...], ...] = ()
    """The virtual rings (the target's ring first), checked to be edge-disjoint Hamiltonian cycles."""
    tables: StreamTables | None = None
    """A static FSE-DP program's stream tables (`streams.bin`), stored once for every chiplet."""

    @property
    def mode(self) -> str:
        return self.manifest.mode

    @property
    def strategy(self) -> str:
        return self.manifest.strategy

    def program_path(self, chiplet: int) -> str:
        return os.path.join(self.outdir, self.manifest.programs[chiplet].bin)

    def locate(self, chiplet: int, index: int) -> tuple[str, int | None, str]:
        """(.fsa path, its line or None, "instruction i `text`") of record `index` of a chiplet."""
        entry = self.manifest.programs[chiplet]
        program = self.programs[chiplet]
        text = format_record(program.instrs[index], program.mode == "dynamic") if index < len(program) else "end"
        if entry.fsa is None:  # compiled without its text form: the binary and the record index say where
            return os.path.join(self.outdir, entry.bin), None, f"instruction {index} `{text}`"
        path = os.path.join(self.outdir, entry.fsa)
        line = None
        try:
            with open(path, encoding="utf-8") as handle:
                _, lines = parse_text_lines(handle.read(), entry.fsa)
            line = lines[index]
        except (OSError, FsedpError, IndexError, UnicodeDecodeError):
            pass
        return path, line, f"instruction {index} `{text}`"

    def table_error(self, index: int, message: str) -> FsedpError:
        """A located error about record `index` of the shared stream-table file (exit 2)."""
        from fsedp_compiler.sim.errors import ProgramError

        assert self.tables is not None
        rec = self.tables.instrs[index]
        return ProgramError(f"record {index} `{format_record(rec)}`: {message}",
                            path=os.path.join(self.outdir, TABLES_FILE))

    def error(self, chiplet: int, index: int, message: str) -> FsedpError:
        """A located error about record `index` of a chiplet's program (exit 2)."""
        from fsedp_compiler.sim.errors import ProgramError

        path, line, what = self.locate(chiplet, index)
        return ProgramError(f"{what}: {message}", path=path, line=line)


def _fail(path: str, message: str, field: str | None = None) -> FsedpError:
    return FsedpError(message, path=path, field=field)


def _read_member(outdir: str, name: str, limit: int, what: str) -> bytes:
    """A file named by program.json: a regular file inside `outdir`, at most `limit` bytes."""
    path = os.path.join(outdir, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _fail(path, f"{what} listed in program.json is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, f"{what} is not a regular file")
    if st.st_size > limit:
        raise _fail(path, f"{what} is {st.st_size} bytes, more than the {limit} program.json implies")
    with open(path, "rb") as handle:
        data = handle.read(st.st_size + 1)  # never more than stat said: the file may not grow unbounded
    if len(data) != st.st_size:
        raise _fail(path, f"{what} changed while being read")
    return data


def manifest_target(m: Manifest, path: str) -> Target:
    """The target program.json describes, checked (topology, ring, DRAM chiplets)."""
    t = m.target
    edges = tuple((min(a, b), max(a, b)) for a, b in t.links)
    problem = topology_problem(t.chiplets, edges) or ring_problem(t.chiplets, edges, tuple(t.ring))
    if problem:
        raise _fail(path, problem, "target")
    if len(set(t.dram_at)) != len(t.dram_at) or max(t.dram_at) >= t.chiplets:
        raise _fail(path, f"dram_at must name distinct chiplets of 0..{t.chiplets - 1}", "target.dram_at")
    c = t.chiplet
    dtypes = ("bf16", "fp16", "int8", "fp8")
    return Target(name=t.name, description=t.description, num_chiplets=t.chiplets, topology=t.topology,
                  edges=tuple(sorted(set(edges))), dram_at=tuple(t.dram_at), ring=tuple(t.ring),
                  chiplet=ChipletParams(tops=tuple((d, getattr(c.tops, d)) for d in dtypes), sram_mib=c.sram_mib,
                                        dram_channels=c.dram_channels, dram_gbps_per_channel=c.dram_gbps_per_channel,
                                        dram_latency_ns=c.dram_latency_ns, dram_pj_per_bit=c.dram_pj_per_bit,
                                        sram_pj_per_bit=c.sram_pj_per_bit,
                                        pj_per_mac=tuple((d, getattr(c.pj_per_mac, d)) for d in dtypes)),
                  link=LinkParams(t.link.gbps, t.link.latency_ns, t.link.pj_per_bit),
                  cost=CostParams(**t.cost.model_dump()) if t.cost else CostParams())


def _rings(m: Manifest, target: Target, path: str) -> tuple[tuple[int, ...], ...]:
    """The program's virtual rings: Hamiltonian cycles over the links, the first the target's
    ring, no link in two of them (so no two virtual networks share a link)."""
    rings = [tuple(r) for r in (m.target.rings or [target.ring])]
    if rings[0] != target.ring:
        raise _fail(path, "the first virtual ring must be the target's ring", "target.rings.0")
    used: set[frozenset[int]] = set()
    n = target.num_chiplets
    for k, ring in enumerate(rings):
        if (problem := ring_problem(n, target.edges, ring)) is not None:
            raise _fail(path, problem, f"target.rings.{k}")
        mine = {frozenset((ring[i], ring[(i + 1) % n])) for i in range(n)} if n > 2 else set()
        if mine & used:
            raise _fail(path, f"ring {k} shares a link with an earlier ring", f"target.rings.{k}")
        used |= mine
    return tuple(rings)


def _layout(arrays: dict[str, np.ndarray], plan: ShardPlan, target: Target, path: str) -> Layout:
    i = plan.layer.index
    shape = (plan.num_streams, plan.num_shards)
    got = []
    for name, kind in (("chiplet", "i"), ("channel", "i"), ("addr", "i"), ("tile_bytes", "i")):
        key = f"l{i}_{name}"
        arr = arrays.get(key)
        want = shape if name != "tile_bytes" else shape[:1]
        if arr is None or arr.shape != want or arr.dtype.kind != kind:
            raise _fail(path, f"layout of layer {i} needs an integer array of shape {want}", key)
        got.append(arr.astype(np.int64))
    chiplet, channel, addr, tile_bytes = got
    if ((chiplet < 0) | (chiplet >= target.num_chiplets)).any() or not np.isin(chiplet, target.dram_at).all():
        raise _fail(path, "a tile lives on a chiplet without DRAM", f"l{i}_chiplet")
    if ((channel < 0) | (channel >= target.chiplet.dram_channels)).any():
        raise _fail(path, f"channels are 0..{target.chiplet.dram_channels - 1}", f"l{i}_channel")
    if (addr < 0).any():
        raise _fail(path, "negative DRAM address", f"l{i}_addr")
    want_bytes = [plan.shard_bytes(e) for e in range(plan.num_streams)]
    if tile_bytes.tolist() != want_bytes:
        raise _fail(path, f"tile sizes of layer {i} differ from its layer description", f"l{i}_tile_bytes")
    return Layout(chiplet, channel, addr, tile_bytes)


def _read_npz(data: bytes, path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _fail(path, f"unreadable layout ({err})") from None


def _layer(entry, target: Target, path: str, where: str) -> tuple[MoeLayerSpec, ShardPlan]:
    spec = MoeLayerSpec(entry.index, entry.d_model, entry.d_ffn, entry.num_experts, entry.top_k, entry.num_shared,
                        entry.d_ffn_shared, entry.activation, entry.dtype)
    if spec.top_k > spec.num_experts or (spec.num_shared > 0) != (spec.d_ffn_shared > 0):
        raise _fail(path, "top_k exceeds the experts, or shared experts without their width", where)
    m = entry.shards
    for f, name in ((spec.d_ffn, "d_ffn"), (spec.d_ffn_shared, "d_ffn_shared")):
        if f % m:
            raise _fail(path, f"{name} = {f} is not divisible by {m} shards", f"{where}.shards")
    size = MATRICES[spec.activation] * spec.d_model * (spec.d_ffn // m) * DTYPE_BYTES[spec.dtype]
    shared = MATRICES[spec.activation] * spec.d_model * (spec.d_ffn_shared // m) * DTYPE_BYTES[spec.dtype]
    if entry.shard_bytes != size or entry.shared_shard_bytes != (shared if spec.num_shared else 0):
        raise _fail(path, "shard sizes do not follow from the layer's dimensions", f"{where}.shard_bytes")
    channels = tuple(tuple(c) for c in entry.channels)
    if channels != dram_channels(target):
        raise _fail(path, "the channel deal must list every DRAM channel of the target in order", f"{where}.channels")
    return spec, ShardPlan(spec, m, entry.buffers, channels)  # type: ignore[arg-type]


def load_outdir(outdir: str) -> Loaded:
    """Load and check a program directory (see the module docstring)."""
    if not os.path.isdir(outdir):
        raise _fail(outdir, "not a directory; give the output directory of `fsedpc compile`")
    path = os.path.join(outdir, MANIFEST)
    try:
        raw = _read_member(outdir, MANIFEST, MAX_MANIFEST_BYTES, "program.json")
    except FsedpError as err:
        if "missing" in err.message:
            raise _fail(outdir, "no program.json here; give the output directory of `fsedpc compile`") from None
        raise
    from fsedp_compiler.sim.manifest import parse_manifest

    try:
        text = raw.decode("utf-8")
        manifest = parse_manifest(text)
    except UnicodeDecodeError:
        raise _fail(path, "not UTF-8 text") from None
    except ValueError as err:
        raise _fail(path, str(err)) from None
    check_digest(text, path)
    target = manifest_target(manifest, path)
    n = target.num_chiplets
    if len(target.ring) != n:
        raise _fail(path, f"ring lists {len(target.ring)} chiplets, target has {n}", "target.ring")
    if sorted(p.chiplet for p in manifest.programs) != list(range(n)):
        raise _fail(path, f"needs one program per chiplet 0..{n - 1}", "programs")
    names = [p.bin for p in manifest.programs] + [p.fsa for p in manifest.programs if p.fsa] + list(manifest.files)
    if len(set(names)) != len(names) or MANIFEST in names:
        raise _fail(path, "file names must be distinct (and not program.json)", "programs")
    _check_strategy(manifest, path)
    for name, digest in sorted(manifest.files.items()):
        data = _read_member(outdir, name, 1 << 36, "file")
        if sha256_hex(data) != digest:
            raise _fail(os.path.join(outdir, name), "SHA-256 does not match program.json (edited after compiling?)")
    programs = _programs(outdir, manifest, target)
    loaded = Loaded(outdir, manifest, target, programs, rings=_rings(manifest, target, path))
    if LAYOUT not in manifest.files:
        raise _fail(path, "the program's DRAM layout (layout.npz) is not listed", "files")
    arrays = _read_npz(_read_member(outdir, LAYOUT, 1 << 36, "layout"), os.path.join(outdir, LAYOUT))
    seen: set[int] = set()
    for k, entry in enumerate(manifest.layers):
        where = f"layers.{k}"
        if entry.index in seen or entry.index >= manifest.num_layers:
            raise _fail(path, f"layer index {entry.index} repeated or not below num_layers", f"{where}.index")
        seen.add(entry.index)
        spec, plan = _layer(entry, target, path, where)
        policy = None if entry.baseline else Policy(entry.order or "paired", entry.direction or "per-shard",
                                                    entry.trajectory or "nearest", entry.rings or "all")
        loaded.layers[spec.index] = LayerDesc(spec, plan, _layout(arrays, plan, target, os.path.join(outdir, LAYOUT)),
                                              policy, entry.baseline)
    for k, d in enumerate(manifest.dense):
        if d.index in loaded.dense or d.index >= manifest.num_layers:
            raise _fail(path, f"dense block {d.index} repeated or not below num_layers", f"dense.{k}.index")
        loaded.dense[d.index] = DenseSpec(d.index, d.flops_per_token, d.weight_bytes, d.kind)
    if manifest.mode == "static":
        loaded.trace = _bundled_trace(outdir, manifest, loaded, path)
        if TABLES_FILE in manifest.files:  # hashed above, like every listed file
            data = _read_member(outdir, TABLES_FILE, 1 << 36, "stream tables")
            if sha256_hex(data) != manifest.files[TABLES_FILE]:
                raise _fail(os.path.join(outdir, TABLES_FILE), "SHA-256 does not match program.json")
            loaded.tables = _tables(decode_tables(data, os.path.join(outdir, TABLES_FILE)), manifest,
                                    os.path.join(outdir, TABLES_FILE))
    return loaded


def check_digest(text: str, path: str) -> None:
    """program.json's own fields (target, layers, steps...) must be as compiled: its
    `manifest_sha256` is the digest of all the others. `text` passed the schema already."""
    import json

    from fsedp_compiler.files.digest import DIGEST_FIELD, manifest_digest

    try:
        doc = json.loads(text)
        ok = doc[DIGEST_FIELD] == manifest_digest(doc)
    except (ValueError, KeyError, TypeError, RecursionError):
        ok = False
    if not ok:
        raise _fail(path, "program.json's digest check failed: its fields were changed after compiling (the "
                          f"{DIGEST_FIELD} of every other field does not match); recompile, or reassemble edited "
                          ".fsa files with `fsedpc asm`, which is the only way to change a program", DIGEST_FIELD)


def _tables(tables: StreamTables, m: Manifest, path: str) -> StreamTables:
    """The stream tables must be of the program's FSE-DP layers and steps."""
    fsedp = {layer.index for layer in m.layers if layer.baseline is None}
    for layer, step in tables.index:
        if layer not in fsedp or m.steps is None or step >= m.steps:
            raise _fail(path, f"a stream table for l={layer} s={step}, which is not a step of an FSE-DP layer of "
                              f"this program ({m.steps} steps)")
    return tables


def _check_strategy(m: Manifest, path: str) -> None:
    """Every layer runs the program's strategy, or (`auto`) the one it names: a baseline layer says
    which, an FSE-DP layer (FSE-DP or an ablation) carries its policy instead."""
    for k, layer in enumerate(m.layers):
        strategy = m.strategy if m.strategy != "auto" else layer.strategy
        if strategy is None:
            raise _fail(path, "an auto program names each layer's strategy", f"layers.{k}.strategy")
        if layer.strategy not in (None, strategy):
            raise _fail(path, f"strategy {m.strategy} but the layer says {layer.strategy}", f"layers.{k}.strategy")
        baseline = strategy if not strategy.startswith("fsedp") else None
        if layer.baseline != baseline:
            raise _fail(path, f"strategy {strategy} but the layer says {layer.baseline or 'fsedp'}",
                        f"layers.{k}.baseline")
        if baseline is None and None in (layer.order, layer.direction, layer.trajectory):
            raise _fail(path, "an FSE-DP layer needs its policy (order, direction, trajectory)", f"layers.{k}")
        if baseline is not None and m.mode != "static":
            raise _fail(path, "baseline strategies compile static programs", "mode")
    if m.mode == "static" and (m.trace is None or m.steps is None or m.tokens is None):
        raise _fail(path, "a static program names its trace, steps and tokens", "trace")
    if m.mode == "static" and m.trace not in m.files:
        raise _fail(path, "the bundled trace must be listed (with its SHA-256) under files", "trace")


def _programs(outdir: str, m: Manifest, target: Target) -> list[Program]:
    from fsedp_compiler.isa import MAX_PORTS

    programs: list[Program | None] = [None] * target.num_chiplets
    for entry in m.programs:
        c = entry.chiplet
        ports = chiplet_ports(target, c)
        if len(ports) > MAX_PORTS:
            raise _fail(outdir, f"chiplet {c} has {len(ports)} links, more than the ISA's {MAX_PORTS} ports")
        limit = header_size(len(ports)) + 32 * entry.instructions
        data = _read_member(outdir, entry.bin, limit, "program")
        bin_path = os.path.join(outdir, entry.bin)
        if sha256_hex(data) != entry.bin_sha256:
            raise _fail(bin_path, "SHA-256 does not match program.json (edited or truncated after compiling?)")
        if (entry.fsa is None) != (entry.fsa_sha256 is None):
            raise _fail(os.path.join(outdir, MANIFEST), "a program's text (fsa) and its SHA-256 come together",
                        f"programs.{c}.fsa")
        fsa = _read_member(outdir, entry.fsa, 1 << 36, "program text") if entry.fsa is not None else None
        if fsa is not None and sha256_hex(fsa) != entry.fsa_sha256:
            raise _fail(os.path.join(outdir, entry.fsa),
                        f"edited after assembling: it no longer matches {entry.bin}; run `fsedpc asm {outdir}` to "
                        "reassemble it")
        program = decode(data, bin_path)
        if program.chiplet != c:
            raise _fail(bin_path, f"program is for chiplet {program.chiplet}, program.json says {c}")
        if len(program) != entry.instructions:
            raise _fail(bin_path, f"{len(program)} instructions, program.json says {entry.instructions}")
        if program.ports != ports:
            raise _fail(bin_path, f"ports {list(program.ports)} do not match {target.name}'s links of chiplet {c} "
                                  f"({list(ports)})")
        channels = target.chiplet.dram_channels if c in target.dram_at else 0
        if program.channels != channels:
            raise _fail(bin_path, f"{program.channels} DRAM channels; chiplet {c} of {target.name} has {channels}")
        if program.mode != m.mode:
            raise _fail(bin_path, f"a {program.mode} program in a {m.mode} program directory")
        programs[c] = program
    return programs  # type: ignore[return-value]


def chiplet_ports(target: Target, chiplet: int) -> tuple[int, ...]:
    """Neighbours of `chiplet` in port order (the ISA's convention)."""
    return neighbours(target.edges, target.num_chiplets)[chiplet]


def _bundled_trace(outdir: str, m: Manifest, loaded: Loaded, path: str) -> RoutingTrace:
    assert m.trace is not None
    trace = load_trace(os.path.join(outdir, m.trace))
    check_trace(loaded, trace, os.path.join(outdir, m.trace))
    if trace.num_steps != m.steps or trace.num_tokens != m.tokens:
        raise _fail(path, f"the bundled trace has {trace.num_steps} steps x {trace.num_tokens} tokens, "
                          f"program.json says {m.steps} x {m.tokens}", "steps")
    return trace


def check_trace(loaded: Loaded, trace: RoutingTrace, path: str) -> None:
    """A routing trace must fit the program: its chiplets, MoE layers, experts and top-k."""
    n = loaded.target.num_chiplets
    if trace.num_chiplets != n or int(trace.token_chiplet.max(initial=0)) >= n:
        raise _fail(path, f"trace spreads tokens over {trace.num_chiplets} chiplets, the program has {n}", "chiplets")
    for index, layer in loaded.layers.items():
        if index not in trace.layer_indices:
            raise _fail(path, f"the trace has no routing for MoE layer {index}", "layers")
        pos = trace.layer_indices.index(index)
        if trace.top_k != layer.spec.top_k or int(trace.experts[pos].max(initial=0)) >= layer.spec.num_experts:
            raise _fail(path, f"layer {index}: the trace's top-k or expert ids do not fit the layer "
                              f"({layer.spec.num_experts} experts, top {layer.spec.top_k})", "experts")
