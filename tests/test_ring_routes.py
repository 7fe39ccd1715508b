"""`ring.routes` and `ring.route_lengths` (every home's trajectory in one O(N) sweep, issue 17)
against the per-shard reference `ring.route`, on random rings, member sets, directions and rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsedp_compiler.fsedp.policy import TRAJECTORIES
from fsedp_compiler.fsedp.ring import Ring, route, route_lengths, routes, short_routes, walk_order


@st.composite
def rings(draw, max_size: int = 12):
    n = draw(st.integers(1, max_size))
    order = draw(st.permutations(range(n)))
    members = draw(st.integers(1, 2**n - 1))
    return Ring(tuple(order)), members


@settings(max_examples=300, deadline=None)
@given(rings(), st.sampled_from([1, -1]), st.sampled_from(TRAJECTORIES))
def test_routes_equal_route_for_every_home(case, direction: int, rule: str) -> None:
    ring, members = case
    entries, lengths = routes(ring, members, direction, rule)
    for home in range(ring.size):
        assert (entries[home], lengths[home]) == route(ring, home, members, direction, rule)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.permutations(range(n)), st.lists(st.integers(1, 2**n - 1), min_size=1, max_size=6))),
    st.sampled_from(TRAJECTORIES))
def test_route_lengths_equal_route_for_many_member_sets(case, rule: str) -> None:
    order, sets = case
    ring = Ring(tuple(order))
    for direction in (1, -1):
        walk = walk_order(ring, direction)
        rows = np.array([[m >> c & 1 for c in walk] for m in sets], dtype=bool)
        got = route_lengths(rows, direction, rule)
        want = [[route(ring, c, m, direction, rule)[1] for c in walk] for m in sets]
        assert got.tolist() == want


def test_routes_refuses_an_empty_member_set() -> None:
    with pytest.raises(ValueError):
        routes(Ring((0, 1, 2)), 0, 1)


@settings(max_examples=200, deadline=None)
@given(rings(), st.sampled_from(TRAJECTORIES), st.sampled_from([1, -1]))
def test_short_routes_take_the_way_that_walks_fewer_links(case, rule: str, tie: int) -> None:
    """A SHORT (SHORT_CCW) stream: every home's shards go the way round whose trajectory is
    shorter (equal ways: clockwise, counter-clockwise), and the machine's own rule
    (`sim.trajectory`) picks the same way."""
    from fsedp_compiler.sim.trajectory import Trajectories

    ring, members = case
    ways, entries, lengths = short_routes(ring, members, rule, tie)
    machine = Trajectories(ring.order).ways(members, rule, 0 if tie == 1 else 1)
    for home in range(ring.size):
        cw, ccw = route(ring, home, members, 1, rule), route(ring, home, members, -1, rule)
        d = tie if cw[1] == ccw[1] else 1 if cw[1] < ccw[1] else -1
        assert (ways[home], entries[home], lengths[home]) == (d, *(cw if d == 1 else ccw))
        assert machine[home] == (0 if d == 1 else 1)
