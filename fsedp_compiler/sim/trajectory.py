"""Shard trajectories on the virtual ring as the machine decides them (R1-R3, R5), independently
of the compiler: where a shard loaded at a home enters S_e, where it ends, and which way round a
SHORT stream's shard goes."""

from __future__ import annotations


class Trajectories:
    """Shard trajectories on the virtual ring (R1-R3, R5) under a layer's trajectory rule.

    Walking from its home in its stream's direction, a shard passes chiplets without computing
    (arc 1) until its entry, then computes at every member (arc 2) until its end: nearest = the
    first member from the home and the last member before it (R2); fullring = one lap from the
    home; single-entry = every shard enters at the member first reached from ring position 0."""

    def __init__(self, order: tuple[int, ...]) -> None:
        self.order = order
        self.n = len(order)
        self.pos = {c: i for i, c in enumerate(order)}

    def first_members(self, members: int, d: int) -> list[int]:
        """For every ring position p, the position of the first member reached walking from p
        (included) in direction d; one sweep round the ring."""
        n, order = self.n, self.order
        out = [0] * n
        nxt = -1
        for k in range(2 * n - 1, -1, -1):  # two laps backwards so every position sees a member
            p = (k * d) % n if d > 0 else (-k) % n
            if members >> order[p] & 1:
                nxt = p
            if k < n:
                out[p] = nxt
        return out

    def ends(self, home: int, members: int, d: int, rule: str, ahead: list[int],
             behind: list[int]) -> tuple[int, int, int, int]:
        """(entry, end, hops of arc 1, hops of arc 2) of a shard homed at `home`; `ahead` and
        `behind` are `first_members` in direction d and -d."""
        n, pos, order = self.n, self.pos, self.order
        p = pos[home]
        q = ahead[0 if rule == "single-entry" else p]
        a1 = (q - p) * d % n
        if rule == "fullring":
            a2 = n - 1 - a1
        else:
            a2 = (behind[(q - d) % n] - q) * d % n
        return order[q], order[(q + d * a2) % n], a1, a2

    def of(self, home: int, members: int, d: int, rule: str) -> tuple[int, int, list[int]]:
        """(entry, end, chiplets walked from the home) of one shard."""
        entry, end, a1, a2 = self.ends(home, members, d, rule, self.first_members(members, d),
                                       self.first_members(members, -d))
        p = self.pos[home]
        return entry, end, [self.order[(p + d * k) % self.n] for k in range(a1 + a2 + 1)]

    def ways(self, members: int, rule: str, tie: int = 0) -> list[int]:
        """Per home chiplet, the direction bit (0 cw, 1 ccw) of a SHORT stream's shard: the way
        whose trajectory walks fewer links, equal ways `tie`; O(N)."""
        cw, ccw = self.first_members(members, 1), self.first_members(members, -1)
        out = [0] * self.n
        for c in self.order:
            _, _, a1, a2 = self.ends(c, members, 1, rule, cw, ccw)
            _, _, b1, b2 = self.ends(c, members, -1, rule, ccw, cw)
            out[c] = 0 if a1 + a2 < b1 + b2 else 1 if a1 + a2 > b1 + b2 else tie
        return out
