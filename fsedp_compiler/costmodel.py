"""The cost model: the single source of durations (integer ns) and energies (pJ).

The scheduler, the static expansion, the simulator and the CP-SAT cross-check all call it, so
their times are comparable. Transfers separate *occupancy* (the resource is busy for
`ceil(bytes / GB/s)` ns, as 1 byte at 1 GB/s takes 1 ns) from *latency* (data is usable that
long after the transfer ends); a resource can start its next transfer when occupancy ends.

Compute: an FFN op on T tokens with P weights does T·P MACs (2 ops each) at the chiplet's TOPS
for the dtype. Low-batch utilisation model: the array is charged at least `min_tokens` token
slots per op (a weight tile loaded for fewer tokens idles part of the array) plus a fixed
`op_overhead_ns` (tile load and pipeline fill); both default to the optimistic 1 and 0 and are set
in the target's `[cost]` table (`inputs/target.py: CostParams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from fsedp_compiler.inputs.target import Target


#: R7, cut-through: links move a shard in packets of this many bytes, and a chiplet forwards a
#: shard that goes on as soon as its first packet has arrived (its FFN still waits for all of it).
#: With every link of a target equally fast the onward transfer never overtakes the inbound one.
PACKET_BYTES = 4096


def _ceil_div(a: int, b: float) -> int:
    return int(ceil(a / b)) if a > 0 else 0


@dataclass(frozen=True)
class CostModel:
    """Durations and energies of DRAM loads, D2D transfers and FFN ops on `target` at `dtype`."""

    target: Target
    dtype: str = "bf16"

    # The utilisation knobs come from the target (its [cost] table), so every user of the cost
    # model (scheduler, estimator, machine, cross-check) sees the same ones.
    @property
    def min_tokens(self) -> int:
        return self.target.cost.min_tokens

    @property
    def op_overhead_ns(self) -> int:
        return self.target.cost.op_overhead_ns

    @property
    def scheduler_ns_per_expert(self) -> int:
        """Latency the controller's scheduler adds on the critical path per active expert (dynamic mode)."""
        return self.target.cost.scheduler_ns_per_expert

    # --- DRAM ---
    def dram_busy_ns(self, nbytes: int) -> int:
        """Time one DRAM channel is occupied moving `nbytes`."""
        return _ceil_div(nbytes, self.target.chiplet.dram_gbps_per_channel)

    @property
    def dram_latency_ns(self) -> int:
        return int(ceil(self.target.chiplet.dram_latency_ns))

    def dram_ns(self, nbytes: int) -> int:
        """From issue to data usable in SRAM."""
        return self.dram_latency_ns + self.dram_busy_ns(nbytes)

    # --- D2D links ---
    def link_busy_ns(self, nbytes: int) -> int:
        """Time one link direction is occupied sending `nbytes`."""
        return _ceil_div(nbytes, self.target.link.gbps)

    @property
    def link_latency_ns(self) -> int:
        return int(ceil(self.target.link.latency_ns))

    def link_ns(self, nbytes: int) -> int:
        """From send start to data usable at the neighbour."""
        return self.link_latency_ns + self.link_busy_ns(nbytes)

    # --- compute ---
    @property
    def ops_per_ns(self) -> float:
        return self.target.chiplet.tops_at(self.dtype) * 1e3

    def ffn_ns(self, params: int, tokens: int) -> int:
        """One FFN op: `params` weights (a shard) applied to `tokens` local tokens."""
        if tokens <= 0:
            return 0
        return self.op_overhead_ns + _ceil_div(2 * params * max(tokens, self.min_tokens), self.ops_per_ns)

    def dense_ns(self, flops_per_token: int, tokens: int) -> int:
        """The non-MoE part of a block (attention projections etc.) on `tokens` local tokens."""
        return _ceil_div(flops_per_token * tokens, self.ops_per_ns) if tokens > 0 else 0

    def scheduler_ns(self, active_experts: int) -> int:
        """Modelled latency of the controller's lightweight scheduler for one layer step."""
        return self.scheduler_ns_per_expert * active_experts

    # --- energy (pJ) ---
    def dram_pj(self, nbytes: int) -> float:
        return nbytes * 8 * self.target.chiplet.dram_pj_per_bit

    def link_pj(self, nbytes: int) -> float:
        """One hop of `nbytes`."""
        return nbytes * 8 * self.target.link.pj_per_bit

    def sram_pj(self, nbytes: int) -> float:
        return nbytes * 8 * self.target.chiplet.sram_pj_per_bit

    def mac_pj(self, macs: int) -> float:
        return macs * self.target.chiplet.pj_per_mac_at(self.dtype)
