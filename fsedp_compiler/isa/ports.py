"""The ISA's port numbering: a chiplet's ports are its D2D links, numbered by ascending neighbour id.

One home for the convention, used by the compiler (which names ports in instructions) and the
machine (which routes them); `.ports` / the `.bin` port table record the result per program.
"""

from __future__ import annotations

from collections.abc import Iterable


def neighbours(edges: Iterable[tuple[int, int]], num_chiplets: int) -> list[tuple[int, ...]]:
    """Per chiplet, its neighbours in port order (port p leads to `neighbours[c][p]`)."""
    nbrs: list[set[int]] = [set() for _ in range(num_chiplets)]
    for a, b in edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    return [tuple(sorted(s)) for s in nbrs]


def port_maps(edges: Iterable[tuple[int, int]], num_chiplets: int) -> list[dict[int, int]]:
    """Per chiplet, neighbour -> port."""
    return [{nb: p for p, nb in enumerate(row)} for row in neighbours(edges, num_chiplets)]
