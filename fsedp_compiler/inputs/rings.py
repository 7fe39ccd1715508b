"""The virtual rings of a target: R1 generalised to several edge-disjoint Hamiltonian cycles.

Ring 0 is the target's R1 ring. Where the topology has more links than one cycle uses, further
Hamiltonian cycles over links no earlier ring uses (a torus decomposes into two, a fully
connected system into about N/2) let streams spread over every physical link: each ring is a
pair of virtual networks (one per direction) with their own escape slots and bubbles (R4). The
search is a bounded depth-first search, deterministic; a topology where it finds nothing (a mesh,
whose corner chiplets have two links) keeps one ring.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

#: at most this many rings (each adds two virtual networks: two escape slots per chiplet, R4)
MAX_RINGS = 3
#: search budget (extensions of a partial cycle) per ring
BUDGET = 200_000


def _adjacency(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    for row in adj:
        row.sort()
    return adj


def cycle_edges(ring: tuple[int, ...]) -> set[frozenset[int]]:
    """The undirected links a ring uses."""
    n = len(ring)
    return {frozenset((ring[i], ring[(i + 1) % n])) for i in range(n)} if n > 2 else set()


def hamiltonian_cycles(n: int, adj: list[list[int]], budget: int = BUDGET) -> Iterator[tuple[int, ...]]:
    """Hamiltonian cycles from chiplet 0, fewest-options first, each once per direction; stops
    after `budget` extensions."""
    path, on_path, steps = [0], [False] * n, 0
    on_path[0] = True
    stack = [iter(sorted(adj[0], key=lambda w: len(adj[w])))]
    while stack:
        w = next(stack[-1], None)
        if w is None:  # every way on from path[-1] tried: step back
            stack.pop()
            if len(path) > 1:
                on_path[path.pop()] = False
            continue
        if on_path[w]:
            continue
        steps += 1
        if steps > budget:
            return
        if len(path) + 1 == n:
            if 0 in adj[w] and path[1] < w:  # closes the cycle; one of its two orientations
                yield (*path, w)
            continue
        path.append(w)
        on_path[w] = True
        stack.append(iter(sorted((x for x in adj[w] if not on_path[x]),
                                 key=lambda x: sum(not on_path[y] for y in adj[x]))))


def _complement_cycle(n: int, adj: list[list[int]], used: set[frozenset[int]]) -> tuple[int, ...] | None:
    """The Hamiltonian cycle the unused links form when they are exactly one (2-regular, connected)."""
    rest = [[w for w in adj[v] if frozenset((v, w)) not in used] for v in range(n)]
    if any(len(r) != 2 for r in rest):
        return None
    cycle, prev = [0], -1
    while len(cycle) < n:
        v = cycle[-1]
        w = rest[v][0] if rest[v][0] != prev else rest[v][1]
        if w == 0:
            return None
        prev = v
        cycle.append(w)
    return tuple(cycle) if 0 in rest[cycle[-1]] else None


@functools.lru_cache(maxsize=64)
def decomposed_pair(n: int, edges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Two edge-disjoint Hamiltonian cycles covering a 4-regular topology (a torus), or None."""
    adj = _adjacency(n, edges)
    if n < 5 or any(len(a) != 4 for a in adj):
        return None
    for first in hamiltonian_cycles(n, adj):
        second = _complement_cycle(n, adj, cycle_edges(first))
        if second is not None:
            return first, second
    return None


@functools.lru_cache(maxsize=64)
def virtual_rings(n: int, edges: tuple[tuple[int, int], ...], ring: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Ring 0 (`ring`) and up to MAX_RINGS - 1 further edge-disjoint Hamiltonian cycles."""
    rings = [ring]
    adj = _adjacency(n, edges)
    used = cycle_edges(ring)
    while len(rings) < MAX_RINGS and n >= 5:
        free = [[w for w in adj[v] if frozenset((v, w)) not in used] for v in range(n)]
        if any(len(f) < 2 for f in free):
            break
        found = next(hamiltonian_cycles(n, free), None)
        if found is None:
            break
        rings.append(found)
        used |= cycle_edges(found)
    return tuple(rings)


def rings_problem(n: int, edges: Iterable[tuple[int, int]], rings: list[tuple[int, ...]]) -> str | None:
    """Why `rings` are not edge-disjoint Hamiltonian cycles over the links, or None."""
    links = {frozenset(e) for e in edges}
    used: set[frozenset[int]] = set()
    for r, ring in enumerate(rings):
        if sorted(ring) != list(range(n)):
            return f"ring {r} must visit each of the {n} chiplets exactly once"
        mine = cycle_edges(ring)
        if not mine <= links:
            a, b = sorted(next(iter(mine - links)))
            return f"ring {r} steps over {a} - {b}, which is not a link"
        if mine & used:
            a, b = sorted(next(iter(mine & used)))
            return f"ring {r} shares the link {a} - {b} with an earlier ring"
        used |= mine
    return None
