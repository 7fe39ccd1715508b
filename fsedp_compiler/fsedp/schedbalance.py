"""The per-shard policy's candidate plans: which to build, and the one to take.

`per_shard` picks, of three plans (everything clockwise on R1's ring, whole experts balanced on
it, each expert CW, CCW, SHORT or SHORT_CCW on any ring, balanced), the one with the least
estimated time, building a plan only when a lower bound of its score (`per_shard`) leaves it a
chance. The balances that build the plans are in `schedgreedy.py`; what they read of the streams
comes from the link-byte sweeps (`_Swept`) or, on one small ring under `nearest`, from a table of
every expert's member sets (`_Tabulated`, `schedtables.MemberRows`): the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import getitem

import numpy as np

from fsedp_compiler.costmodel import CostModel
from fsedp_compiler.fsedp.flowcontrol import min_buffers
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW
from fsedp_compiler.fsedp.schedgreedy import balance, balance_both, balance_rings, balance_streams
from fsedp_compiler.fsedp.schedrefine import REFINE_MAX_WORK, network_set, refine
from fsedp_compiler.fsedp.schedtables import (MemberRows, Tables, arc_lengths, home_weights,
                                              link_bytes_and_lengths, short_link_bytes, top, total)

#: a candidate plan: directions, rings, busiest link's bytes, most links of one shard's trajectory
Plan = tuple[list[int], list[int], int, int]

#: the column of `arc_lengths`' longest of each direction: CW, CCW, SHORT and SHORT_CCW (the shorter way)
_WAY = {CW: 0, CCW: 1, SHORT: 2, SHORT_CCW: 2}


def per_shard(tables: list[Tables], present: np.ndarray, active: np.ndarray, ordered: list[int], rule: str,
              cost: CostModel, other_bound: int, prune: bool = True, hot: bool = False,
              members: list[int] | None = None) -> tuple[list[int], list[int], int]:
    """The per-shard policy: of three plans (everything clockwise on R1's ring, whole experts
    balanced on it, each expert CW, CCW, SHORT or SHORT_CCW on any of the rings, balanced), the one
    with the least estimated time: the busiest of DRAM, compute (`other_bound`) and links, plus
    the longest trajectory's hops of one shard (the tail after the last loads). Ties: fewer
    virtual networks (the earlier plan), unless a tied plan relieves busy links (`tie_break`)
    and its networks leave the pool room (`pool_allows`; `hot`: a stream computes longer at a
    member than it loads). `tables` per ring (R1's first); rings whose extra networks would not
    fit the buffers (R4, `rings_fit`) are left out. Returns the directions, rings and link bound.

    `prune`: a plan that provably cannot change the choice (its floor above the least score so
    far, or a tie it would lose by index and could not win by relief) is not built (the result
    is the same; `prune=False` builds all three: tests compare the two, and the schedules with
    the frozen scheduler). A plan's score is the busiest of `other_bound` and the links plus the
    hops of its longest trajectory. Its busiest link carries at least the average over the links of its rings of the bytes times
    links its streams move, and a stream moves least, and walks its longest trajectory shortest,
    with its least option: for the balanced plan min(clockwise, counter-clockwise) on R1's ring,
    for the per-shard plan the shorter way (never longer than either direction) on the best
    ring. Sums and maxima over streams of those minima bound the score from below (the floor).
    The plan with the lower floor is built first (of equal floors, see the comment there); a tie
    the later plan would be the earlier plan of is skipped too when the built plan with the
    least links takes it whatever links the later plan has; and when both plans can at best
    tie with the all-clockwise one, one pass over the streams builds both (`balance_both`). On
    one ring's member table (`members`: each stream's member bitmask) one pass builds both
    whenever either is needed."""
    count = len(active)
    plan = tables[0].plan
    usable = tables if len(tables) == 1 else [t for r, t in enumerate(tables)
                                              if r == 0 or rings_fit(plan.buffers, r + 1)]
    hop_ns = tables[0].hop_ns
    rows = usable[0].members() if rule == "nearest" and len(usable) == 1 and members is not None else None
    ways = _Swept(usable, present, active, rule) if rows is None else _Tabulated(rows, active, members)
    n = usable[0].chiplets

    def balanced_plan(directions: list[int], peaks: tuple[int, int]) -> Plan:
        return (directions, [0] * count, max(peaks),
                max(map(getitem, ways.longest_rows()[0], map(_WAY.__getitem__, directions))))

    def shards_plan(directions: list[int], on_ring: list[int], peak: int) -> Plan:
        longest = ways.longest_rows()
        if len(longest) == 1:
            return (directions, on_ring, peak, max(map(getitem, longest[0], map(_WAY.__getitem__, directions))))
        return (directions, on_ring, peak,
                max([longest[r][i][_WAY[d]] for i, (d, r) in enumerate(zip(directions, on_ring))]))

    def balanced() -> Plan:
        return balanced_plan(*ways.balanced(ordered))

    def shards() -> Plan:
        return shards_plan(*ways.shards(ordered))

    def both_plans() -> tuple[Plan, Plan]:
        """The per-shard and balanced plans (one ring) in one pass over the streams."""
        per_shard_choice, balanced_choice = ways.both(ordered)
        return shards_plan(*per_shard_choice), balanced_plan(*balanced_choice)

    # the most links of any stream clockwise, counter-clockwise and the shorter way, on R1's ring
    most = ways.most()
    built: dict[int, tuple[int, int, Plan]] = {}  # plan index -> (score, link ns, plan)

    link_busy_ns = cost.link_busy_ns

    def add(index: int, p: Plan) -> None:
        # its score: the busiest of the other bound and its links, plus its longest trajectory's hops
        link_ns = link_busy_ns(p[2])
        built[index] = ((other_bound if other_bound > link_ns else link_ns) + p[3] * hop_ns, link_ns, p)

    add(0, ([CW] * count, [0] * count, ways.cw_peak(), most[0]))
    bound = max(other_bound, 1)

    def chosen() -> tuple[list[int], list[int], int]:
        pick = _pick(built, other_bound, plan.buffers, hot)
        _, link_ns, (directions, on_ring, _, _) = built[pick]
        if pick == 2 and link_ns > other_bound and count * n * len(usable) <= REFINE_MAX_WORK:
            # the per-shard plan taken where links bind: its busiest link lowered by local search
            # on the networks it already uses (`refine`; the choice of plan stays the estimate's)
            directions, on_ring, peak = refine(*ways.options(), directions, on_ring, ordered)
            link_ns = link_busy_ns(peak)
        return directions, on_ring, link_ns

    def needed(floor: int, link_floor: int, index: int) -> bool:
        """Whether a plan whose score is >= `floor` and busiest link >= `link_floor` ns can
        change the choice (`tie_break`) among the plans built so far."""
        least = min([b[0] for b in built.values()])
        if floor != least:
            return floor < least
        tied = [i for i, b in built.items() if b[0] == least]
        if index < min(tied):
            # It would be the earlier plan of the tie, and is taken unless a tied plan relieves
            # it: the built plan r with the least link (ties: the earlier), whatever its link
            # l >= link_floor. l = link(r) makes it the relief itself (earlier index), and the
            # relief condition only gets easier as l grows, so it holds for every l iff at
            # link_floor. Then r is taken, as without it iff r is taken now.
            r = min(tied, key=lambda i: (built[i][1], i))
            relief = built[r][1]
            if not (link_floor > relief and link_floor >= LINK_BUSY * bound
                    and link_floor - relief >= LINK_RELIEF * bound and _allowed(built, r, plan.buffers, hot)):
                return True
            return _pick(built, other_bound, plan.buffers, hot) != r
        link = built[min(tied)][1]
        # it can only be taken as the tied plan with the least busiest link (`tie_break`)
        relief = min([built[i][1] for i in tied])
        # a plan that relieves links needs a second network, and a hot step's pool may refuse it
        return (link >= LINK_BUSY * bound and link - link_floor >= LINK_RELIEF * bound
                and link_floor <= relief and pool_allows(plan.buffers, 2, hot))

    later: list[tuple[int, int, int, Callable[[], Plan]]] = [(0, 0, 1, balanced), (0, 0, 2, shards)]
    if prune:
        either, shortest = ways.either(most), ways.shortest(most)
        floor_balanced, floor_shards = other_bound + either * hop_ns, other_bound + shortest * hop_ns
        if not needed(floor_balanced, 0, 1) and not needed(floor_shards, 0, 2):
            return chosen()  # the link terms only raise the floors
        # The busiest link carries at least the average: the bytes times links moved over the
        # links of the plan's rings (2N each). A stream moves the least the shorter way round.
        least_balanced, least_shards = ways.least_moved()
        link_balanced = link_busy_ns(-(-least_balanced // (2 * n)))
        floor_balanced = max(other_bound, link_balanced) + either * hop_ns
        link_shards = link_busy_ns(-(-least_shards // (2 * n * len(usable))))
        floor_shards = max(other_bound, link_shards) + shortest * hop_ns
        if rows is not None:
            # One ring's table: one pass builds both plans for about the cost of one, so both are
            # built when either may change the choice (a superset of what is needed: the same)
            if needed(floor_balanced, link_balanced, 1) or needed(floor_shards, link_shards, 2):
                shards_built, balanced_built = both_plans()
                add(2, shards_built)
                add(1, balanced_built)
            return chosen()
        # The lower floor first: the plan it builds may let the other be skipped (`needed`; a
        # plan skipped stays skippable whatever the other turns out to be). Of equal floors the
        # balanced plan first, unless its link floor is above the per-shard plan's by the
        # relief (LINK_RELIEF of the bound): the per-shard plan built near its link floor then
        # lets the balanced plan be skipped (a tie the balanced plan cannot keep), and the
        # other way round the per-shard plan would be needed as the likely relief.
        relieves = link_balanced - link_shards >= LINK_RELIEF * bound
        later = sorted([(floor_balanced, link_balanced, 1, balanced), (floor_shards, link_shards, 2, shards)],
                       key=lambda c: (c[0], -c[2] if relieves else c[2]))
    for k, (floor, link_floor, index, build) in enumerate(later):
        if index in built or (prune and not needed(floor, link_floor, index)):
            continue
        rest = later[k + 1:]
        if rest and len(usable) == 1 and floor == rest[0][0] == built[0][0] and needed(*rest[0][:3]):
            # The other plan comes next and is likely built too: both can at best tie with the
            # all-clockwise plan (their floors are its score), and it is then skipped only if
            # its link floor is above the link of the one built. One pass builds both for about
            # the numpy calls of one (building a plan that could be skipped changes nothing).
            shards_built, balanced_built = both_plans()
            add(2, shards_built)
            add(1, balanced_built)
            continue
        add(index, build())
    return chosen()


class _Swept:
    """What the candidate plans need of the streams, from the link-byte sweeps of every usable
    ring (`schedtables.py`): any rule, ring count and size."""

    def __init__(self, usable: list[Tables], present: np.ndarray, active: np.ndarray, rule: str) -> None:
        self.usable, self.active = usable, active
        self.link, self.lengths, self.after = zip(*(link_bytes_and_lengths(t, present, active, rule) for t in usable))
        self.longest, self.shorter = zip(*(arc_lengths(t, h, active) for t, h in zip(usable, self.lengths)))
        self.weights: list[np.ndarray] = []  # per ring, `home_weights`, when a plan needs them
        self.rows: list[list[list[int]]] = []  # `longest` as lists, when a plan needs them
        self.short: list[tuple[np.ndarray, np.ndarray]] = []  # `short_link_bytes` per ring, once built

    def cw_peak(self) -> int:
        """The busiest link's bytes with every stream clockwise on R1's ring."""
        return top(np.add.reduce(self.link[0][::2], axis=0))

    def most(self) -> list[int]:
        """The most links of any stream clockwise, counter-clockwise and the shorter way, on R1's ring."""
        return np.maximum.reduce(self.longest[0], axis=0).tolist()

    def either(self, most: list[int]) -> int:
        """Max over streams of min(clockwise, counter-clockwise) links: between most[2] and most[0]."""
        first = self.longest[0]
        return most[0] if most[2] == most[0] else top(np.minimum(first[:, 0], first[:, 1]))

    def shortest(self, most: list[int]) -> int:
        """Max over streams of the shorter way's links on its best ring."""
        return most[2] if len(self.longest) == 1 else top(np.minimum.reduce([h[:, 2] for h in self.longest]))

    def least_moved(self) -> tuple[int, int]:
        """The bytes x links the streams move at least: each the shorter direction on R1's ring
        (balanced plan), and each shard the shorter way on the best ring (per-shard plan)."""
        totals = np.add.reduce(self.link[0], axis=1)  # [2A]: each stream's bytes x links, cw and ccw
        least_balanced = total(np.minimum(totals[0::2], totals[1::2]))
        self.weights[:] = [home_weights(t, self.active) for t in self.usable]
        moved = [np.add.reduce(w[0::2] * h, axis=1) for w, h in zip(self.weights, self.shorter)]
        return least_balanced, total(moved[0] if len(moved) == 1 else np.minimum.reduce(moved))

    def longest_rows(self) -> list[list[list[int]]]:
        """`longest` per ring as lists: [ring][stream][cw, ccw, shorter]."""
        if not self.rows:
            self.rows.extend(h.tolist() for h in self.longest)
        return self.rows

    def shorts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per ring, the SHORT and SHORT_CCW ways' link bytes (built once: the plan and `refine` read them)."""
        if not self.short:
            self.weights[:] = self.weights or [home_weights(t, self.active) for t in self.usable]
            self.short.extend(short_link_bytes(t, h, w, a)
                              for t, h, w, a in zip(self.usable, self.lengths, self.weights, self.after))
        return self.short

    def options(self) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
        """Per ring, the streams' CW/CCW arcs and SHORT/SHORT_CCW link bytes (`refine`'s input)."""
        return list(self.link), self.shorts()

    def balanced(self, ordered: list[int]) -> tuple[list[int], tuple[int, int]]:
        return balance(self.link[0], list(ordered))

    def shards(self, ordered: list[int]) -> tuple[list[int], list[int], int]:
        return balance_rings(list(self.link), self.shorts(), ordered)

    def both(self, ordered: list[int]) -> tuple[tuple[list[int], list[int], int], tuple[list[int], tuple[int, int]]]:
        return balance_both(self.link[0], self.shorts()[0], ordered)


class _Tabulated:
    """`_Swept` on one ring under `nearest`, the streams' rows gathered from `MemberRows` (the
    same numbers: each row is the sweep's of that expert and member set)."""

    def __init__(self, rows: MemberRows, active: np.ndarray, members: list[int]) -> None:
        sets = (1 << len(rows.cw[0])) - 1  # member sets per expert
        self.table = rows
        self.keys = [e * sets + m - 1 for e, m in zip(active.tolist(), members)]
        self.longest = [rows.longest[k] for k in self.keys]
        self.moved = [rows.moved[k] for k in self.keys]

    def cw_peak(self) -> int:
        return max(map(sum, zip(*[self.table.cw[k] for k in self.keys])))

    def most(self) -> list[int]:
        return [max(column) for column in zip(*self.longest)]

    def either(self, most: list[int]) -> int:
        return most[0] if most[2] == most[0] else max([a if a < b else b for a, b, _ in self.longest])

    def shortest(self, most: list[int]) -> int:
        return most[2]

    def least_moved(self) -> tuple[int, int]:
        # SHORT's bytes x links: each shard its shorter way's links (`arc_lengths`' shorter)
        return sum([a if a < b else b for a, b, _, _ in self.moved]), sum([m[2] for m in self.moved])

    def longest_rows(self) -> list[list[list[int]]]:
        return [self.longest]

    def _options(self) -> np.ndarray:
        return self.table.options.take(self.keys, axis=0)

    def balanced(self, ordered: list[int]) -> tuple[list[int], tuple[int, int]]:
        options = self._options()
        return balance(options[:, 0].reshape(2 * len(options), -1), list(ordered))

    def options(self) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
        """`_Swept.options` from the table."""
        options = self._options()
        count = len(options)
        arcs, short, short_ccw = (options[:, k].reshape(2 * count, -1) for k in range(3))
        return [arcs], [(short, short_ccw)]

    def shards(self, ordered: list[int]) -> tuple[list[int], list[int], int]:
        return balance_rings(*self.options(), ordered)

    def both(self, ordered: list[int]) -> tuple[tuple[list[int], list[int], int], tuple[list[int], tuple[int, int]]]:
        rows = self.table.rows
        return balance_streams([rows[k] for k in self.keys], self.moved, ordered)


#: Of plans with the same estimate, a later one (more directions) is taken when it lowers the
#: busiest link by at least this fraction of the step's DRAM/compute bound, the links of the
#: earlier one being at least half as busy as that bound: shards queue on a busy link although
#: the estimate (the busiest resource) does not see it, and a direction costs an escape slot
#: (R4) that only pays where it spreads real load.
LINK_RELIEF, LINK_BUSY = 0.1, 0.5

#: In a hot step (a stream computes longer at its busiest member than its shards take to load),
#: shards wait in that member's buffers and the pool binds; then a relieving plan is taken only
#: if the pool holds POOL_SLACK times the slots its networks hold plus a load's two (R4). On
#: ring-8 (Mixtral, 256 skewed tokens, B = 6) the two-way plan that relieves 93%-busy links runs
#: 0.5-6% slower than all clockwise: its second escape slot is one of the four a load may use.
POOL_SLACK = 2


def rings_fit(buffers: int, rings: int) -> bool:
    """Whether the pool has room for `rings` virtual rings: R4's minimum for their 2 x rings
    networks, and beyond R1's ring the same slack as `pool_allows` (every network holds an
    escape slot on every chiplet). On torus-4x4's random tiny-moe steps at B = 6 the second ring
    (four of six slots held) made steps 5% slower (median, 21 of 30 slower; docs/crosscheck.md)."""
    networks = 2 * rings
    return buffers >= min_buffers(networks) and (rings == 1 or buffers >= POOL_SLACK * (networks + 2))


def pool_allows(buffers: int, networks: int, hot: bool) -> bool:
    """Whether a plan on `networks` virtual networks may be taken for link relief (`POOL_SLACK`)."""
    return not hot or buffers >= POOL_SLACK * (networks + 2)


def networks_of(directions: list[int], rings: list[int]) -> int:
    """The virtual networks a plan uses: a (ring, direction) pair each, SHORT ways both of its ring's."""
    return len(network_set(directions, rings))


def tie_break(scores: list[int], link_ns: list[int], other_bound: int,
              allowed: list[bool] | None = None) -> int:
    """The plan to take: the least estimate, the earlier plan (fewer directions) on ties unless a
    tied plan relieves busy links (`LINK_RELIEF`, `LINK_BUSY`); `allowed[i]`: plan i may be taken
    for relief (`pool_allows`; default all)."""
    least = min(scores)
    first = scores.index(least)
    relief = -1  # of the tied plans allowed, the one with the least link (ties: the earlier)
    for i, score in enumerate(scores):
        if score == least and (allowed is None or allowed[i]) and (relief < 0 or link_ns[i] < link_ns[relief]):
            relief = i
    if relief < 0:
        return first
    bound = max(other_bound, 1)
    if link_ns[first] >= LINK_BUSY * bound and link_ns[first] - link_ns[relief] >= LINK_RELIEF * bound:
        return relief
    return first


def _allowed(built: dict[int, tuple[int, int, Plan]], index: int, buffers: int, hot: bool) -> bool:
    """`pool_allows` for a built plan (its networks counted only in a hot step)."""
    return not hot or pool_allows(buffers, networks_of(built[index][2][0], built[index][2][1]), hot)


def _pick(built: dict[int, tuple[int, int, Plan]], other_bound: int, buffers: int, hot: bool) -> int:
    """The index of the plan `tie_break` takes of those built."""
    order = sorted(built)
    allowed = [_allowed(built, i, buffers, hot) for i in order] if hot else None
    return order[tie_break([built[i][0] for i in order], [built[i][1] for i in order], other_bound, allowed)]
