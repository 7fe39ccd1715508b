"""Functional mode: the numbers the instructions compute, checked against `reference.py`.

Weights come from the DRAM image: a tile in a buffer is the slice of the seeded expert weights
that the layout stores at the address its load named. Token rows are the step's seeded
activations of the tokens a chiplet holds, grouped per expert by the router (with their gates);
they travel as the TOKSENDs say (`e=*`: a chiplet's whole token set). An FFN applies the tile its
buffer holds to the token rows of its expert present on its chiplet: rows of the chiplet's own
tokens accumulate into its outputs, other rows into its partial outputs for the chiplet that owns
them (rows of a whole token set: into that chiplet's partial outputs summed over experts), which
REDUCE sends and ACC adds where the program says. At the end of every MoE step each chiplet's outputs must equal the
reference forward of its tokens (float32, rtol = atol = 1e-5).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque

import numpy as np

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.isa import ALL_EXPERTS
from fsedp_compiler.reference import (
    ExpertWeights,
    expert_forward,
    expert_weights,
    moe_forward,
    shard_weights,
    shared_expert_weights,
    token_activations,
)

from fsedp_compiler.sim.errors import ProgramError
from fsedp_compiler.sim.loader import LayerDesc, Loaded
from fsedp_compiler.sim.steps import Routing

RTOL = 1e-5
ATOL = 1e-5
WEIGHT_CACHE_BYTES = 512 << 20
"""Whole experts kept between uses (least recently used first out): generating them dominates."""


def _nbytes(w: ExpertWeights) -> int:
    return sum(a.nbytes for a in (w.w_gate, w.w_up, w.w_down) if a is not None)


class FunctionalMismatch(FsedpError):
    """A token's computed output differs from the reference forward."""


class DataPlane:
    """What the buffers hold during a run, and the outputs the instructions computed."""

    def __init__(self, loaded: Loaded, seed: int = 0, strict: bool = True) -> None:
        self.loaded = loaded
        self.seed = seed
        self.strict = strict
        """False: a mismatch is recorded (`summary()['mismatch']`) instead of raised"""
        self.mismatch: str | None = None
        self.n = loaded.target.num_chiplets
        self.checked = 0
        self._weights: OrderedDict[tuple[int, int], ExpertWeights] = OrderedDict()
        self._weight_bytes = 0
        self._tiles: dict[tuple[int, int, int], ExpertWeights] = {}

    # --- per step state
    def begin_step(self, layer: LayerDesc, step: int, routing: Routing) -> None:
        self.layer, self.step, self.routing = layer, step, routing
        spec = layer.spec
        tokens = len(routing.token_chiplet)
        self.x = token_activations(spec, tokens, self.seed, step)
        gates = np.zeros((tokens, spec.num_experts + spec.num_shared), dtype=np.float32)
        np.add.at(gates, (np.repeat(np.arange(tokens), routing.experts.shape[1]), routing.experts.reshape(-1)),
                  routing.weights.reshape(-1).astype(np.float32))
        gates[:, spec.num_experts:] = 1.0
        self.gates = gates
        self.local = [np.flatnonzero(routing.token_chiplet == c) for c in range(self.n)]
        self.row_of = np.zeros(tokens, dtype=np.int64)
        for rows in self.local:
            self.row_of[rows] = np.arange(len(rows))
        # outputs per chiplet and expert (their sum is the chiplet's MoE output), partial outputs
        self.out: list[dict[int, np.ndarray]] = [{} for _ in range(self.n)]
        self.partial: list[dict[tuple[int, int], np.ndarray]] = [{} for _ in range(self.n)]
        self.items: list[dict[tuple, deque]] = [defaultdict(deque) for _ in range(self.n)]

    def _tile(self, e: int, j: int) -> ExpertWeights:
        key = (self.layer.spec.index, e, j)
        tile = self._tiles.get(key)
        if tile is None:
            spec = self.layer.spec
            w = self._weights.get((spec.index, e))
            if w is None:
                w = (shared_expert_weights(spec, e - spec.num_experts, self.seed) if e >= spec.num_experts
                     else expert_weights(spec, e, self.seed))
                self._weights[(spec.index, e)] = w
                self._weight_bytes += _nbytes(w)
                while self._weight_bytes > WEIGHT_CACHE_BYTES and len(self._weights) > 1:
                    (old_layer, old_e), old = self._weights.popitem(last=False)
                    self._weight_bytes -= _nbytes(old)
                    self._tiles = {k: v for k, v in self._tiles.items() if k[:2] != (old_layer, old_e)}
            else:
                self._weights.move_to_end((spec.index, e))
            tile = self._tiles[key] = shard_weights(w, j, self.layer.plan.num_shards)
        return tile

    def _accumulate(self, c: int, e: int, tokens: np.ndarray, y: np.ndarray) -> None:
        """Outputs of `tokens` (all held by chiplet c) for expert e."""
        acc = self.out[c].get(e)
        if acc is None:
            acc = self.out[c][e] = np.zeros((len(self.local[c]), self.x.shape[1]), dtype=np.float32)
        acc[self.row_of[tokens]] += y

    def _group(self, owner: int, e: int) -> np.ndarray:
        """`owner`'s token group of expert e (ALL_EXPERTS: its whole token set), by token id."""
        if e == ALL_EXPERTS:
            return self.local[owner]
        return self.routing.groups[owner].get(e, np.zeros(0, dtype=np.int64))

    def _partial(self, c: int, e: int, owner: int) -> np.ndarray:
        """Chiplet c's partial outputs for `owner`'s group of e (ALL_EXPERTS: summed over experts)."""
        buf = self.partial[c].get((e, owner))
        if buf is None:
            buf = self.partial[c][(e, owner)] = np.zeros((len(self._group(owner, e)), self.x.shape[1]), np.float32)
        return buf

    def _apply(self, c: int, e: int, j: int, owner: int, tokens: np.ndarray, rows: slice | np.ndarray,
               into: int | None = None) -> None:
        """Tile (e, j) on some token rows of `owner`'s group of e, computed on chiplet c; remote
        rows go to the partial outputs of group `into` (default e; ALL_EXPERTS: the whole set's)."""
        y = expert_forward(self.x[tokens], self._tile(e, j)) * self.gates[tokens, e][:, None]
        if owner == c:
            self._accumulate(c, e, tokens, y)
        else:
            self._partial(c, e if into is None else into, owner)[rows] += y

    # --- stream programs (FSE-DP)
    def stream_ffn(self, c: int, e: int, j: int, tokens: int) -> None:
        group = self.routing.groups[c].get(e, np.zeros(0, dtype=np.int64))[:tokens]
        self._apply(c, e, j, c, group, slice(0, len(group)))

    # --- task programs (baselines)
    def task_start(self, t) -> None:
        """An instruction of a task program starts: it reads (and FFN / ACC write) its data."""
        kind, c, e = t.kind, t.chiplet, t.expert
        n = self.n
        if kind == "ffn":
            group = self.routing.groups[c].get(e)
            if group is not None:
                self._apply(c, e, t.shard, c, group, slice(0, len(group)))
            for (ie, g, row, count), queue in self.items[c].items():
                if ie == e and g < n and queue and not t.sets:
                    tokens = queue[0]
                    self._apply(c, e, t.shard, g, tokens, slice(row, row + count))
                elif ie == ALL_EXPERTS and g < n and queue and t.sets:
                    tokens = queue[0]
                    mine = np.flatnonzero(np.isin(tokens, self._group(g, e)))
                    if len(mine):
                        self._apply(c, e, t.shard, g, tokens[mine], row + mine, into=ALL_EXPERTS)
        elif kind == "acc":
            data = self._take(t, pop=True)
            owner = t.shard - n
            if owner == c:
                tokens = self._group(c, e)[t.row:t.row + t.tokens]
                self._accumulate(c, e, tokens, data)
            else:
                self._partial(c, e, owner)[t.row:t.row + t.tokens] += data
        elif kind == "reduce":
            owner = t.shard - n
            buf = self.partial[c].get((e, owner))
            if buf is None or t.row + t.tokens > len(buf):
                what = "summed over experts" if e == ALL_EXPERTS else f"of expert {e}"
                raise self._error(t, f"reduces partial outputs {what} for chiplet {owner} that were never "
                                     "computed here")
            t._payload = buf[t.row:t.row + t.tokens].copy()  # type: ignore[attr-defined]
        elif kind == "toksend":
            if t.shard < n:
                if t.shard == c:
                    group = self.routing.groups[c].get(e) if e != ALL_EXPERTS else self.local[c]
                    if group is None or t.row + t.tokens > len(group):
                        what = "of its token set" if e == ALL_EXPERTS else f"of expert {e}"
                        raise self._error(t, f"sends token rows {t.row}..{t.row + t.tokens - 1} {what}, but "
                                             f"chiplet {c} holds {0 if group is None else len(group)}"
                                             + ("" if e == ALL_EXPERTS else " routed to it"))
                    t._payload = group[t.row:t.row + t.tokens]  # type: ignore[attr-defined]
                else:
                    t._payload = self._take(t, pop=False)  # type: ignore[attr-defined]
            else:
                t._payload = self._take(t, pop=True)  # type: ignore[attr-defined]

    def task_done(self, t) -> None:
        """A transfer's data is usable at its receiver."""
        if t.kind in ("toksend", "reduce"):
            self.items[t.peer][(t.expert, t.shard, t.row, t.tokens)].append(t._payload)

    def _take(self, t, pop: bool) -> np.ndarray:
        queue = self.items[t.chiplet].get((t.expert, t.shard, t.row, t.tokens))
        if not queue:
            e = "*" if t.expert == ALL_EXPERTS else t.expert
            raise self._error(t, f"uses rows (e={e} g={t.shard} row={t.row} tokens={t.tokens}), which are "
                                 "not in a buffer here (a missing wait?)")
        return queue.popleft() if pop else queue[0]

    def _error(self, t, message: str) -> ProgramError:
        return self.loaded.error(*t.where, f"layer {self.layer.spec.index} step {self.step}: {message}")

    # --- the check
    def end_step(self) -> None:
        spec = self.layer.spec
        ref = moe_forward(self.x, self.routing.experts, self.routing.weights, spec, self.seed)
        for c in range(self.n):
            tokens = self.local[c]
            got = sum(self.out[c].values()) if self.out[c] else np.zeros((len(tokens), self.x.shape[1]), np.float32)
            bad = ~np.isclose(got, ref[tokens], rtol=RTOL, atol=ATOL).all(axis=1)
            if bad.any():
                message = self._explain(c, int(np.flatnonzero(bad)[0]), float(np.abs(got - ref[tokens]).max()))
                if self.strict:
                    raise FunctionalMismatch(message)
                self.mismatch = self.mismatch or message
                return
        self.checked += 1

    def _explain(self, c: int, row: int, err: float) -> str:
        """Name the expert whose contribution to the token is wrong or missing."""
        spec = self.layer.spec
        t = int(self.local[c][row])
        wanted = [int(e) for e in np.flatnonzero(self.gates[t])]
        where = f"token {t} (chiplet {c}), layer {spec.index}, step {self.step}"
        if ALL_EXPERTS in self.out[c]:  # partial outputs reduced over all experts: no per-expert account
            return (f"functional mismatch: {where}: its outputs reduced over all experts are wrong or incomplete "
                    f"(max error {err:.3g})")
        for e in wanted:
            w = (shared_expert_weights(spec, e - spec.num_experts, self.seed) if e >= spec.num_experts
                 else expert_weights(spec, e, self.seed))
            expect = expert_forward(self.x[t:t + 1], w)[0] * self.gates[t, e]
            got = self.out[c].get(e)
            if got is None or not np.allclose(got[row], expect, rtol=RTOL, atol=ATOL):
                what = "missing" if got is None or not got[row].any() else "wrong"
                return f"functional mismatch: {where}, expert {e}: {what} contribution (max error {err:.3g})"
        extra = [e for e, arr in self.out[c].items() if e not in wanted and arr[row].any()]
        return (f"functional mismatch: {where}, expert {extra[0] if extra else '?'}: unexpected contribution "
                f"(max error {err:.3g})")

    def summary(self) -> dict:
        out = {"checked_layer_steps": self.checked, "rtol": RTOL, "atol": ATOL, "seed": self.seed}
        if not self.strict:
            out.update(exact=self.mismatch is None, mismatch=self.mismatch)
        return out
