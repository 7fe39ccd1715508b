"""The DRAM image of a compiled program: where every weight tile of every MoE layer lives.

Each strategy places tile j of expert e on one DRAM channel (`Placement`); on every channel the
tiles it holds are stored back to back, layer by layer (in layer order), and within a layer in
(expert, tile) order. The compiler writes the image's table into the program (`layout.npz`) and
names each load's address from it; the machine reads the same table to know what an address holds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fsedp_compiler.fsedp.shardplan import ShardPlan

#: (expert ids [E, 1], tile ids [1, M]) -> (chiplet [E, M], channel on that chiplet [E, M])
Placement = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LayerLayout:
    """One MoE layer's tiles: chiplet, channel and byte address of tile j of expert e ([experts, M])."""

    layer: int
    chiplet: np.ndarray
    channel: np.ndarray
    addr: np.ndarray
    tile_bytes: np.ndarray
    """[experts]: bytes of one tile of each expert (routed, then shared)."""


def fsedp_placement(plan: ShardPlan) -> Placement:
    """FSE-DP (and dp, fsdp): tiles dealt round-robin over every DRAM channel (`ShardPlan.home`)."""
    table = np.asarray(plan.channels, dtype=np.int64)

    def place(e: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = (e * plan.num_shards + j) % len(table)
        return table[index, 0], table[index, 1]

    return place


def build_layouts(plans: list[ShardPlan], placements: list[Placement]) -> dict[int, LayerLayout]:
    """The image of all layers, in layer order: addresses continue from layer to layer per channel."""
    next_free: dict[tuple[int, int], int] = {}
    out: dict[int, LayerLayout] = {}
    for plan, place in sorted(zip(plans, placements), key=lambda pp: pp[0].layer.index):
        experts, m = plan.num_streams, plan.num_shards
        e_ids, j_ids = np.arange(experts)[:, None], np.arange(m)[None, :]
        chiplet, channel = (np.broadcast_to(a, (experts, m)).astype(np.int32) for a in place(e_ids, j_ids))
        sizes = np.array([plan.shard_bytes(e) for e in range(experts)], dtype=np.int64)
        # per channel, the tiles it holds back to back in (expert, tile) order, after earlier layers
        flat_key = (chiplet.astype(np.int64) << 16 | channel).ravel()
        flat_size = np.repeat(sizes, m)
        order = np.argsort(flat_key, kind="stable")
        keys, starts = np.unique(flat_key[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        addr_sorted = np.empty(len(order), dtype=np.int64)
        sized = flat_size[order]
        for key, lo, hi in zip(keys.tolist(), starts.tolist(), ends.tolist()):
            base = next_free.get((key >> 16, key & 0xFFFF), 0)
            run = np.cumsum(sized[lo:hi])
            addr_sorted[lo:hi] = base + run - sized[lo:hi]
            next_free[(key >> 16, key & 0xFFFF)] = base + int(run[-1])
        addr = np.empty(len(order), dtype=np.int64)
        addr[order] = addr_sorted
        out[plan.layer.index] = LayerLayout(plan.layer.index, chiplet, channel, addr.reshape(experts, m), sizes)
    return out


def layouts_to_npz(layouts: dict[int, LayerLayout]) -> bytes:
    """The `layout.npz` bytes (uncompressed, deterministic): `l<i>_{chiplet,channel,addr,tile_bytes}`."""
    arrays: dict[str, np.ndarray] = {}
    for index, lay in sorted(layouts.items()):
        arrays[f"l{index}_chiplet"] = lay.chiplet
        arrays[f"l{index}_channel"] = lay.channel
        arrays[f"l{index}_addr"] = lay.addr
        arrays[f"l{index}_tile_bytes"] = lay.tile_bytes
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return _normalise_zip(buf.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Zip members carry a timestamp; rewrite them with a fixed one so equal inputs give equal bytes."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            dst.writestr(info, src.read(name))
    return out.getvalue()
