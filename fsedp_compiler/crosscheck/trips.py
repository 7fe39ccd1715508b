"""The trips the cross-check's models may choose under R1-R3, and the directions that pick them.

A stream is described to the machine by (expert, S_e, direction), and the direction is one of
CW, CCW, SHORT and SHORT_CCW (`ring.py`): every shard clockwise, every shard counter-clockwise,
or each shard the way round from its home that walks fewer links (ties clockwise, or
counter-clockwise). So the way a shard walks is a function of its stream's direction and its
home: a stream's *pattern* maps each home of its expert to CW or CCW, and the rules allow
exactly the patterns of those four directions (only CW when `allowed_directions` says one
way), the choices the scheduler's per-shard policy has on one ring. Given its way, a shard's trip is
fixed (R2: it enters S_e at the first member reached and visits every member once in ring
order; R3: it only forwards elsewhere): `trip_via`.

With several virtual rings (R1 generalised, `Instance.virtual_rings`) a stream walks the ring the
stream table assigns it (`Stream.ring`): that assignment is pinned, and the patterns, trips and
directions above are those of the stream's ring. What stays free is each stream's direction on
it; a schedule that moves a stream to another ring is a different stream table, not a solution
of these models.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fsedp_compiler.fsedp.flowcontrol import min_buffers
from fsedp_compiler.fsedp.ring import CCW, CW, SHORT, SHORT_CCW, Ring, directed_routes
from fsedp_compiler.fsedp.scheduler import StepSchedule
from fsedp_compiler.fsedp.streaming import Trip, trajectories

if TYPE_CHECKING:
    from fsedp_compiler.crosscheck.instance import Instance

Variants = dict[tuple[int, int], dict[tuple[int, int], Trip]]
"""Per (stream index, shard): the trips the model may choose, keyed (direction, entry)."""

Patterns = list[dict[int, dict[int, int]]]
"""Per stream index: per stream direction the rules allow (CW, CCW, SHORT, SHORT_CCW), each home's way."""


def entry_of(trip: Trip) -> int:
    """The member where a trip starts computing (R2 makes it the first member from its home)."""
    return trip.path[trip.computes.index(True)]


def trip_via(ring: Ring, base: Trip, members: int, direction: int, entry: int) -> Trip:
    """`base`'s shard walking `direction` from its home to `entry`, then every member once."""
    home = base.path[0]
    visits = ring.members_in_order(members, entry, direction)
    approach = ring.dist(home, entry, direction)
    path = tuple(ring.walk(home, approach + ring.dist(entry, visits[-1], direction), direction))
    computes = tuple(i >= approach and bool(members >> c & 1) for i, c in enumerate(path))
    return dataclasses.replace(base, direction=direction, path=path, computes=computes)


def allowed_directions(inst: Instance) -> list[int]:
    """The ways round the ring a shard may walk: both, unless the ring is too short to have two
    or the pool too small for an escape slot per network (R4; the scheduler's rule too)."""
    return [CW] if inst.ring.size < 3 or inst.plan.buffers < min_buffers(2) else [CW, CCW]


def most_networks(inst: Instance, rings_used: int) -> int:
    """The most virtual networks (R4: one per ring and direction) a schedule of these models may
    use, its streams on `rings_used` distinct rings (pinned) and free to take either way on them."""
    return len(allowed_directions(inst)) * max(rings_used, 1)


def direction_patterns(inst: Instance, sched: StepSchedule) -> Patterns:
    """Per stream, the patterns of CW, CCW, SHORT and SHORT_CCW over its expert's homes (module
    docstring); a pattern equal to an earlier one is kept once, under the earlier direction."""
    ways = allowed_directions(inst)
    out: Patterns = []
    for stream in sched.streams:
        homes = sorted(inst.plan.home_counts(stream.expert))
        ring = inst.ring_of(stream)
        options: dict[int, dict[int, int]] = {}
        for d in ([CW, CCW, SHORT, SHORT_CCW] if len(ways) == 2 else [CW]):
            way = directed_routes(ring, stream.members, d)[0]  # R2: the nearest entry
            pattern = {h: way[h] for h in homes}
            if pattern not in options.values():
                options[d] = pattern
        out.append(options)
    return out


def variants(inst: Instance, sched: StepSchedule, patterns: Patterns | None = None) -> Variants:
    """Per (stream index, shard): its trip for each way its home walks in some allowed pattern,
    on the stream's ring."""
    patterns = direction_patterns(inst, sched) if patterns is None else patterns
    out: Variants = {}
    for t in trajectories(sched, inst.plan, inst.virtual_rings):
        members = sched.streams[t.stream].members
        ring = inst.ring_of(sched.streams[t.stream])
        home = t.path[0]
        opts: dict[tuple[int, int], Trip] = {}
        for d in sorted({p[home] for p in patterns[t.stream].values()}, reverse=True):
            entry = ring.first_member(members, home, d)
            opts[(d, entry)] = trip_via(ring, t, members, d, entry)
        out[(t.stream, t.shard)] = opts
    return out


def with_directions(sched: StepSchedule, directions: dict[int, int]) -> StepSchedule:
    """`sched` with the streams' directions replaced (stream index -> CW, CCW, SHORT, SHORT_CCW)."""
    streams = tuple(dataclasses.replace(s, direction=directions.get(i, s.direction))
                    for i, s in enumerate(sched.streams))
    return dataclasses.replace(sched, streams=streams)


def pattern_of(patterns: Patterns, stream: int, ways: dict[int, int]) -> int | None:
    """The stream direction whose pattern is `ways` (home -> CW/CCW), None if no allowed one."""
    return next((d for d, p in patterns[stream].items() if p == ways), None)
