"""The FSE-DP shard plan of one MoE layer: shard sizes and each shard's DRAM home.

Every expert (routed ids 0..E-1, then shared ids E..E+S-1) is cut along F into M = g·N shards;
shard j holds gate/up columns and down rows [j·F/M, (j+1)·F/M). Shards are dealt round-robin over
all DRAM channels of the target (channel order: chiplet, then channel), so each channel holds the
same bytes of every layer to within one shard of each kind, and the M shards of one expert are
spread over all channels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.fsedp.flowcontrol import MIN_BUFFERS
from fsedp_compiler.inputs.model import MATRICES, MoeLayerSpec
from fsedp_compiler.inputs.target import Target



@dataclass(frozen=True)
class ShardPlan:
    """Shard sizes and homes of one MoE layer on one target."""

    layer: MoeLayerSpec
    num_shards: int
    buffers: int
    channels: tuple[tuple[int, int], ...]
    """Every DRAM channel as (chiplet, channel-on-chiplet), in dealing order."""

    @property
    def num_streams(self) -> int:
        """Experts that stream: routed plus shared."""
        return self.layer.num_experts + self.layer.num_shared

    def is_shared(self, expert: int) -> bool:
        return expert >= self.layer.num_experts

    def shard_cols(self, expert: int) -> int:
        f = self.layer.d_ffn_shared if self.is_shared(expert) else self.layer.d_ffn
        return f // self.num_shards

    def shard_params(self, expert: int) -> int:
        return self._params[expert >= self.layer.num_experts]

    def shard_bytes(self, expert: int) -> int:
        return self._bytes[expert >= self.layer.num_experts]

    @functools.cached_property
    def _params(self) -> tuple[int, int]:
        """Parameters of a routed and of a shared expert's shard (the baselines ask per task)."""
        per_col = MATRICES[self.layer.activation] * self.layer.d_model
        return per_col * self.shard_cols(0), per_col * self.shard_cols(self.layer.num_experts)

    @functools.cached_property
    def _bytes(self) -> tuple[int, int]:
        return self._params[0] * self.layer.dtype_bytes, self._params[1] * self.layer.dtype_bytes

    @property
    def max_shard_bytes(self) -> int:
        sizes = [self.shard_bytes(0)]
        if self.layer.num_shared:
            sizes.append(self.shard_bytes(self.layer.num_experts))
        return max(sizes)

    def channel_index(self, expert: int, shard: int) -> int:
        return (expert * self.num_shards + shard) % len(self.channels)

    def home(self, expert: int, shard: int) -> tuple[int, int]:
        """(chiplet, channel) holding shard `shard` of `expert`."""
        return self.channels[self.channel_index(expert, shard)]

    def home_counts(self, expert: int) -> dict[int, int]:
        """How many of `expert`'s shards each DRAM chiplet holds (round-robin deal)."""
        return _home_counts(self, expert)

    def channel_counts(self, expert: int) -> dict[int, int]:
        """How many of `expert`'s shards each channel (by index in `channels`) holds."""
        return _channel_counts(self, expert)

    def channel_bytes(self) -> list[int]:
        """Bytes of this layer on each channel (for the balance check)."""
        out = [0] * len(self.channels)
        for e in range(self.num_streams):
            size = self.shard_bytes(e)
            for j in range(self.num_shards):
                out[self.channel_index(e, j)] += size
        return out


def dram_channels(target: Target) -> tuple[tuple[int, int], ...]:
    return tuple((c, ch) for c in target.dram_at for ch in range(target.chiplet.dram_channels))


def make_shard_plan(layer: MoeLayerSpec, target: Target, shards_per_chiplet: int, buffers: int) -> ShardPlan:
    """Plan one layer; errors name the layer and say which knob to turn."""
    if shards_per_chiplet < 1:
        raise FsedpError(f"shards-per-chiplet must be >= 1, got {shards_per_chiplet}", field="shards-per-chiplet")
    if buffers < MIN_BUFFERS:
        raise FsedpError(
            f"buffers must be >= {MIN_BUFFERS} (R4: a DRAM load next to a critical bubble needs two free shard buffers), got {buffers}",
            field="buffers",
        )
    m = shards_per_chiplet * target.num_chiplets
    for what, f in (("d_ffn", layer.d_ffn), ("d_ffn_shared", layer.d_ffn_shared if layer.num_shared else m)):
        if f % m:
            fits = [g for g in range(1, 17) if f % (g * target.num_chiplets) == 0]
            hint = f"; shards-per-chiplet values that divide it: {fits}" if fits else ""
            raise FsedpError(
                f"layer {layer.index}: {what} = {f} is not divisible by M = {shards_per_chiplet} x "
                f"{target.num_chiplets} chiplets = {m} shards{hint}",
                field="shards-per-chiplet",
            )
    plan = ShardPlan(layer=layer, num_shards=m, buffers=buffers, channels=dram_channels(target))
    need = buffers * plan.max_shard_bytes
    have = target.chiplet.sram_bytes
    if need > have:
        raise FsedpError(
            f"layer {layer.index}: SRAM too small: {buffers} shard buffers x {plan.max_shard_bytes} bytes = "
            f"{need} bytes, but {target.name} has {have} bytes per chiplet; use more shards-per-chiplet "
            f"or fewer buffers (>= {MIN_BUFFERS})",
            field="shards-per-chiplet",
        )
    return plan


@functools.lru_cache(maxsize=4096)
def _channel_counts(plan: ShardPlan, expert: int) -> dict[int, int]:
    # round robin: M shards from channel (expert*M) mod C on: every channel gets M // C, the
    # first M mod C of them one more
    c, m = len(plan.channels), plan.num_shards
    first = expert * m % c
    return {(first + i) % c: m // c + (1 if i < m % c else 0) for i in range(min(c, m) if m < c else c)}


@functools.lru_cache(maxsize=4096)
def _home_counts(plan: ShardPlan, expert: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for index, k in plan.channel_counts(expert).items():
        chiplet = plan.channels[index][0]
        out[chiplet] = out.get(chiplet, 0) + k
    return out
