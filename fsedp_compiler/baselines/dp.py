"""Data-parallel lowerings: `dp` (replicated: every needing chiplet fetches the whole expert for
itself) and `fsdp` (every tile read once and multicast to all needing chiplets, whole expert
gathered before compute). Both keep FSE-DP's weight placement (`ShardPlan.home`) and compute
each chiplet's own tokens where they are, so no token moves.

* dp: chiplet c reads every tile of each expert it needs from the tile's DRAM home (its own
  DRAM or over shortest paths) through B tile buffers; DRAM reads scale with |S_e|.
* fsdp: a tile is read once at its home and sent down the shortest-path tree from the home to
  S_e, each tree link carrying it once; a chiplet computes an expert only when all its tiles are
  there, and holds two whole experts (gathering the next while computing one).
"""

from __future__ import annotations

from fsedp_compiler.baselines.taskgraph import SEND

from fsedp_compiler.baselines.common import Builder, StepRoute, paired_order


def plan_dp(b: Builder, route: StepRoute) -> None:
    m, buffers = b.plan.num_shards, b.plan.buffers
    seq: dict[int, list[int]] = {}
    for e in paired_order(route):
        for c, toks in route.tokens[e].items():
            s = seq.setdefault(c, [])
            for j in range(m):
                home, ch = b.plan.home(e, j)
                reuse = (s[len(s) - buffers],) if len(s) >= buffers else ()
                # the read is issued once the destination buffer is free (no unbounded staging)
                load = b.load(home, ch, e, j, reuse)
                tile = b.move(SEND, b.topo.path(home, c), e, j, b.plan.shard_bytes(e), load)
                assert tile is not None
                s.append(b.ffn(c, e, j, toks, (tile,)))


def plan_fsdp(b: Builder, route: StepRoute) -> None:
    m = b.plan.num_shards
    done: dict[int, list[list[int]]] = {}  # chiplet -> FFNs of each expert it computed, in order
    for e in paired_order(route):
        needing = route.tokens[e]
        # arrivals into c of this expert wait until the expert two back at c is computed; the
        # reads wait for every needing chiplet's buffer (no unbounded staging at the homes). Its
        # last FFN stands for all of them: they became ready together (all tiles there) on one
        # compute engine, which serves equally ready tasks in program order, so it ends last
        # (waiting on every one made Mixtral's reads 1,792 waits each, 390 k per chiplet-step)
        gate = {c: (done[c][-2][-1],) if len(done.get(c, [])) >= 2 else () for c in needing}
        all_free = tuple(i for deps in gate.values() for i in deps)
        at: dict[int, list[int]] = {c: [] for c in needing}
        for j in range(m):
            home, ch = b.plan.home(e, j)
            load = b.load(home, ch, e, j, all_free)
            have = {home: load}  # chiplet -> task after which the tile is there
            for c in needing:
                path = b.topo.path(home, c)
                for a, nxt in zip(path, path[1:]):
                    if nxt not in have:  # a tree edge: the tile crosses it once
                        have[nxt] = b.move(SEND, [a, nxt], e, j, b.plan.shard_bytes(e), have[a],
                                           first_extra=gate.get(nxt, ()))
                at[c].append(have[c])
        for c, toks in needing.items():
            # every FFN needs every tile: one JOIN of the m arrivals, each FFN waits on it (2m
            # waits where m x m made a Mixtral layer step 1.6 M instructions)
            whole = (b.join(c, e, tuple(at[c])),) if m > 2 else tuple(at[c])
            ffns = [b.ffn(c, e, j, toks, whole) for j in range(m)]
            done.setdefault(c, []).append(ffns)
