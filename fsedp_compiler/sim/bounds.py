"""The ring-aware lower bound of one FSE-DP layer step: no program that follows the rules on
these rings, whatever directions and order it picks, can finish the step sooner.

It depends only on the step's needing sets, token counts and the DRAM image (where each shard
lives), not on the program's choices:

* DRAM: every channel reads its shards back to back, then the last one's latency;
* compute: every member runs the FFN of every shard of every expert it needs;
* links, counted in bytes over the directed links the virtual rings offer (each ring: one to
  the next chiplet and one to the previous, both ways round; on two chiplets, one each way):
  - every shard walks at least the fewest links any ring and direction needs to take it from
    its home through all its members (R1-R3 under the layer's trajectory rule); all shards'
    walks share the rings' links;
  - per directed link, pass-through included: whatever ring and direction each shard takes,
    some link carries at least the optimum of the fractional min-max choice (`linkload`);
  - every member receives each shard homed elsewhere over one of its inbound ring links, and
    every home sends each shard that some other member needs over one of its outbound ones;
  - no link can start before the first shard is loaded (the pipeline's fill: one shard's DRAM
    time and latency).

The machine reports it as the step's `lower_bound_ns` (efficiency = bound / makespan), so the
figure says how close a program comes to what the rings allow, not to its own busiest engine.
"""

from __future__ import annotations

from fsedp_compiler.sim.linkload import Walks, min_max_load
from fsedp_compiler.sim.stream_engine import StreamStep
from fsedp_compiler.sim.trajectory import Trajectories


def ring_bound(st: StreamStep, rings: list[Trajectories], rule: str, cost) -> int:
    """The step's lower bound in ns (module docstring), from its decoded loads and FFN budgets."""
    n = st.num_chiplets
    dram = 0
    first = None  # the earliest a loaded shard is usable anywhere
    shards: dict[tuple[int, int], list[int]] = {}  # (position, home) -> shard bytes
    dram_ns: dict[int, int] = {}  # shard bytes -> DRAM busy time (a few sizes per step)
    for c, _, loads in st.dma:
        busy = 0
        for load in loads:
            nbytes = load[3]
            t = dram_ns.get(nbytes)
            if t is None:
                t = dram_ns[nbytes] = cost.dram_busy_ns(nbytes)
            busy += t
            shards.setdefault((load[0], c), []).append(nbytes)
        dram = max(dram, busy)
        if loads:
            soonest = min(dram_ns[load[3]] for load in loads) + cost.dram_latency_ns
            first = soonest if first is None else min(first, soonest)
    dram_bound = dram + cost.dram_latency_ns if st.dma else 0
    count = [0] * len(st.experts)
    size = [0] * len(st.experts)
    for (pos, _), sizes in shards.items():
        count[pos] += len(sizes)
        size[pos] = sizes[0]
    compute = [0] * n
    ffn_ns: dict[tuple[int, int], int] = {}
    for pos, members in enumerate(st.members):
        params = size[pos] // st.dtype_bytes
        for c in range(n):
            if members >> c & 1:
                key = (params, st.ffn_tokens[c][pos])
                t = ffn_ns.get(key)
                if t is None:
                    t = ffn_ns[key] = cost.ffn_ns(*key)
                compute[c] += count[pos] * t
    walked = 0
    inbound, outbound = [0] * n, [0] * n
    sweeps: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    ways = 2 if n >= 3 else 1  # ring links per chiplet each way (two chiplets: one link each way)
    walks = Walks(n, len(rings) * ways)
    for (pos, home), sizes in shards.items():
        members = st.members[pos]
        if not members & ~(1 << home):
            continue  # needed at home only: no link carries it
        nbytes = sum(sizes)
        hops = None
        choices = []
        for r, traj in enumerate(rings):
            p = traj.pos[home]
            for d in (1, -1):
                key = (pos, 2 * r + (d < 0))
                if key not in sweeps:
                    sweeps[key] = (traj.first_members(members, d), traj.first_members(members, -d))
                _, _, a1, a2 = traj.ends(home, members, d, rule, *sweeps[key])
                hops = a1 + a2 if hops is None else min(hops, a1 + a2)
                # counter-clockwise links are numbered in walking order (position n-1-p leaves p)
                choices.append((r, p, a1 + a2) if ways == 1 else
                               (2 * r, p, a1 + a2) if d > 0 else (2 * r + 1, n - 1 - p, a1 + a2))
        walked += nbytes * (hops or 0)
        walks.add_group(nbytes, choices)
        for m in range(n):
            if m != home and members >> m & 1:
                inbound[m] += nbytes
        outbound[home] += nbytes
    links = len(rings) * ways * n if n >= 2 else 0
    per_link = 0
    if links:
        per_link = max(-(-walked // links), -(-max(inbound) // (len(rings) * ways)),
                       -(-max(outbound) // (len(rings) * ways)))
        # the busiest link under the best direction choice, unless the other bounds dominate anyway
        others = max(dram_bound, max(compute, default=0)) - (first or 0)
        per_link = max(per_link, min_max_load(walks, enough=others * cost.target.link.gbps))
    link_bound = (first or 0) + cost.link_busy_ns(per_link) if per_link else 0
    return max(dram_bound, max(compute, default=0), link_bound)
