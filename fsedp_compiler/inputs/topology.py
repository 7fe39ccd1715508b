"""Topologies by name (`mesh:RxC`, `torus:RxC`, `ring`, `full`): their links, corner chiplets, the
R1 virtual ring (a Hamiltonian cycle: boustrophedon on grids, else a bounded search) and the
checks a hand-written topology or ring must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


_GRID = re.compile(r"^(mesh|torus):(\d+)x(\d+)$")


def grid_shape(topology: str) -> tuple[str, int, int] | None:
    """`("mesh"|"torus", rows, cols)` for a grid topology string, else None."""
    m = _GRID.match(topology)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def topology_edges(topology: str, n: int) -> tuple[tuple[int, int], ...]:
    """Undirected links of a named topology over chiplets 0..n-1 (grids are row-major)."""
    edges: set[tuple[int, int]] = set()
    if topology == "ring":
        edges = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n) if n > 1}
    elif topology == "full":
        edges = {(i, j) for i in range(n) for j in range(i + 1, n)}
    elif (grid := grid_shape(topology)) is not None:
        kind, rows, cols = grid
        for r in range(rows):
            for c in range(cols):
                here = r * cols + c
                if c + 1 < cols or (kind == "torus" and cols > 2):
                    there = r * cols + (c + 1) % cols
                    edges.add((min(here, there), max(here, there)))
                if r + 1 < rows or (kind == "torus" and rows > 2):
                    there = ((r + 1) % rows) * cols + c
                    edges.add((min(here, there), max(here, there)))
    else:
        raise ValueError(topology)
    edges.discard((0, 0))
    return tuple(sorted(e for e in edges if e[0] != e[1]))


def corners(topology: str, n: int) -> tuple[int, ...]:
    """The corner chiplets of a grid (where the FSE-DP paper's system puts its DDR channels)."""
    grid = grid_shape(topology)
    if grid is None:
        raise ValueError(topology)
    _, rows, cols = grid
    return tuple(sorted({0, cols - 1, (rows - 1) * cols, rows * cols - 1}))


def boustrophedon_cycle(rows: int, cols: int) -> tuple[int, ...] | None:
    """A Hamiltonian cycle of a rows x cols mesh: along row 0, snake back over columns
    1.., return up column 0. Exists iff one side is even (and both > 1), or the mesh is 1x2."""
    if rows * cols <= 2:
        return tuple(range(rows * cols))
    if rows == 1 or cols == 1:
        return None
    if rows % 2:
        if cols % 2:
            return None
        transposed = boustrophedon_cycle(cols, rows)
        assert transposed is not None
        return tuple((v % rows) * cols + v // rows for v in transposed)
    cycle = [c for c in range(cols)]
    for r in range(1, rows):
        span = range(cols - 1, 0, -1) if r % 2 else range(1, cols)
        cycle += [r * cols + c for c in span]
    cycle += [r * cols for r in range(rows - 1, 0, -1)]
    return tuple(cycle)


def search_hamiltonian_cycle(n: int, edges: Iterable[tuple[int, int]], budget: int = 200_000) -> tuple[int, ...] | None:
    """Depth-first search for a Hamiltonian cycle starting at chiplet 0, fewest-options first.
    Gives up (None) after `budget` extensions; a target can always name its ring instead."""
    if n <= 2:
        return tuple(range(n))
    adj: dict[int, list[int]] = {v: [] for v in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    for v in adj:
        adj[v].sort()
    path, on_path, steps = [0], [False] * n, 0
    on_path[0] = True

    def extend() -> bool:
        nonlocal steps
        if len(path) == n:
            return 0 in adj[path[-1]]
        options = [w for w in adj[path[-1]] if not on_path[w]]
        options.sort(key=lambda w: sum(not on_path[x] for x in adj[w]))
        for w in options:
            steps += 1
            if steps > budget:
                return False
            path.append(w)
            on_path[w] = True
            if extend():
                return True
            path.pop()
            on_path[w] = False
        return False

    return tuple(path) if extend() else None


def virtual_ring(topology: str, n: int, edges: tuple[tuple[int, int], ...]) -> tuple[int, ...] | None:
    """The R1 virtual ring: ring and fully connected use index order, a torus the first of two
    edge-disjoint Hamiltonian cycles (so a second ring uses the other links), meshes a
    boustrophedon cycle, anything else a search. None when no Hamiltonian cycle is found."""
    if topology in ("ring", "full"):
        return tuple(range(n))
    grid = grid_shape(topology)
    if grid is not None and grid[0] == "torus":
        from fsedp_compiler.inputs.rings import decomposed_pair

        pair = decomposed_pair(n, edges)  # a ring whose unused links form a second one
        if pair is not None:
            return pair[0]
    if grid is not None and (cycle := boustrophedon_cycle(grid[1], grid[2])) is not None:
        return cycle
    return search_hamiltonian_cycle(n, edges)


def ring_problem(n: int, edges: Iterable[tuple[int, int]], ring: tuple[int, ...]) -> str | None:
    """Why `ring` is not a Hamiltonian cycle over the links, or None if it is."""
    if sorted(ring) != list(range(n)):
        return f"ring must visit each of the {n} chiplets exactly once, got {list(ring)}"
    links = {frozenset(e) for e in edges}
    for i, a in enumerate(ring):
        b = ring[(i + 1) % n]
        if n > 1 and a != b and frozenset((a, b)) not in links:
            return f"ring step {a} -> {b} is not a link of the topology"
    return None


def topology_problem(n: int, edges: Iterable[tuple[int, int]]) -> str | None:
    """Why the links do not form a valid connected topology over n chiplets, or None."""
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        if not (0 <= a < n and 0 <= b < n):
            return f"link ({a}, {b}) names a chiplet outside 0..{n - 1}"
        if a == b:
            return f"link ({a}, {b}) connects a chiplet to itself"
        nbrs[a].append(b)
        nbrs[b].append(a)
    component = [-1] * n  # connected components by breadth-first search
    for start in range(n):
        if component[start] >= 0:
            continue
        component[start] = start
        queue = [start]
        for a in queue:
            for b in nbrs[a]:
                if component[b] < 0:
                    component[b] = start
                    queue.append(b)
    if n > 1 and len(set(component)) > 1:
        parts = sorted(sorted(c for c in range(n) if component[c] == root) for root in set(component))
        return f"topology is not connected: components {parts}"
    return None
