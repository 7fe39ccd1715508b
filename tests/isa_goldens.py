"""Golden FSA programs (static, task and dynamic) with their exact text and binary forms, shared
by the ISA round-trip tests (test_isa.py) and the decode and parse error tests (test_isa_errors.py)."""

from __future__ import annotations

from fsedp_compiler.isa import (ANY_ADDR, ANY_UNIT, CCW, CURRENT, CW, WHEN_FORWARD, WHEN_HOME, WHEN_INBOUND, WHEN_MEMBER,
                                WHEN_VISIT, WHERE_NEXT, Program)
from fsedp_compiler.isa import record as r

#: the current tag, short for the goldens
C = CURRENT
GOLDEN_STATIC = Program(0, "static", (1, 3), 2, [
    r("dense", l=0, s=0, tokens=4),
    r("sync", l=0, s=0),
    r("stream", dir=CW, l=0, s=0, e=5, members=0b1011),
    r("stream", dir=CCW, l=0, s=0, e=3, members=0b0001),
    r("loads", ch=1, l=0, s=0, e=5, j=1, stride=8, n=2, bytes=6144, addr=0x7800, entry=0, end=3),
    r("sends", port=0, l=0, s=0, e=5, n=5, bytes=6144),
    r("ffns", l=0, s=0, e=5, n=16, tokens=3),
    r("frees", l=0, s=0, e=5, n=16),
    r("recvs", port=1, l=0, s=0, e=3, n=14, bytes=6144),
    r("ffns", l=0, s=0, e=3, n=16, tokens=1),
    r("frees", l=0, s=0, e=3, n=16),
    r("sync", l=0, s=0),
    r("nop"),
    r("halt"),
])
GOLDEN_TASKS = Program(2, "static", (0, 3), 1, [
    r("load", ch=0, l=1, s=0, e=6, j=2, id=1, bytes=6144, addr=0x3000),
    r("wait", id=1),
    r("send", port=1, l=1, s=0, e=6, j=2, id=2, bytes=6144),
    r("recv", port=0, l=1, s=0, e=6, j=0, id=3, bytes=6144),
    r("tokrecv", port=0, l=1, s=0, e=6, g=0, row=0, tokens=2, id=4, bytes=256),
    r("wait", id=3),
    r("wait", id=4),
    r("ffn", l=1, s=0, e=6, j=0, id=5, tokens=3),
    r("wait", id=5),
    r("reduce", port=0, l=1, s=0, e=6, g=4, row=0, tokens=2, id=6, bytes=512),
    r("tokrecv", port=1, l=1, s=0, e=6, g=6, row=16, tokens=1, id=7, bytes=256),
    r("wait", id=7),
    r("acc", l=1, s=0, e=6, g=6, row=16, tokens=1, id=8),
    r("load", ch=0, l=1, s=0, e=7, j=0, id=9, bytes=6144, addr=0x6000, keep=1),
    r("free", l=1, s=0, e=1, j=0, id=10),
    r("sync", l=1, s=0),
    r("halt"),
])
GOLDEN_DYNAMIC = Program(1, "dynamic", (0, 2), 1, [
    r("dense", l=0, s=C, tokens=0),
    r("sync", l=0, s=C),
    r("streams", l=0, s=C),
    r("foreach", n=11),
    r("when", cond=WHEN_HOME, n=1),
    r("load", ch=ANY_UNIT, l=0, s=C, e=C, j=C, addr=ANY_ADDR),
    r("when", cond=WHEN_INBOUND, n=1),
    r("recv", port=ANY_UNIT, l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_MEMBER, n=1),
    r("ffn", l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_FORWARD, n=2),
    r("where", policy=WHERE_NEXT),
    r("send", port=ANY_UNIT, l=0, s=C, e=C, j=C),
    r("when", cond=WHEN_VISIT, n=1),
    r("free", l=0, s=C, e=C, j=C),
    r("sync", l=0, s=C),
    r("halt"),
])


GOLDEN_STATIC_TEXT = """\
# fsedpc ISA v3
.chiplet 0
.mode static
.channels 2
.ports 1 3            # neighbour chiplet of port 0, port 1
dense   l=0 s=0 tokens=4
sync    l=0 s=0
stream  dir=cw l=0 s=0 e=5 members=0xb
stream  dir=ccw l=0 s=0 e=3 members=0x1
loads   ch=1 l=0 s=0 e=5 j=1 stride=8 n=2 bytes=6144 addr=0x7800 entry=0 end=3
sends   port=0 l=0 s=0 e=5 n=5 bytes=6144
ffns    l=0 s=0 e=5 n=16 tokens=3
frees   l=0 s=0 e=5 n=16
recvs   port=1 l=0 s=0 e=3 n=14 bytes=6144
ffns    l=0 s=0 e=3 n=16 tokens=1
frees   l=0 s=0 e=3 n=16
sync    l=0 s=0
nop
halt
"""

GOLDEN_STATIC_HEX = (
    "4653413303000000000202000e00000001000300000000000000000000000000"
    "0800000000000000000000000000000000000000040000000000000000000000"
    "0900000000000000000000000000000000000000000000000000000000000000"
    "1400000000000000050000000000000000000000000000000b00000000000000"
    "1400010000000000030000000000000000000000000000000100000000000000"
    "2101030000000000050001000800000002000000001800000078000000000000"
    "2200000000000000050000000000000005000000001800000000000000000000"
    "2400000000000000050000000000000010000000030000000000000000000000"
    "2500000000000000050000000000000010000000000000000000000000000000"
    "230100000000000003000000000000000e000000001800000000000000000000"
    "2400000000000000030000000000000010000000010000000000000000000000"
    "2500000000000000030000000000000010000000000000000000000000000000"
    "0900000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)

GOLDEN_TASKS_TEXT = """\
# fsedpc ISA v3
.chiplet 2
.mode static
.channels 1
.ports 0 3            # neighbour chiplet of port 0, port 1
load    ch=0 l=1 s=0 e=6 j=2 id=1 bytes=6144 addr=0x3000
wait    id=1
send    port=1 l=1 s=0 e=6 j=2 id=2 bytes=6144
recv    port=0 l=1 s=0 e=6 j=0 id=3 bytes=6144
tokrecv port=0 l=1 s=0 e=6 g=0 row=0 tokens=2 id=4 bytes=256
wait    id=3
wait    id=4
ffn     l=1 s=0 e=6 j=0 id=5 tokens=3
wait    id=5
reduce  port=0 l=1 s=0 e=6 g=4 row=0 tokens=2 id=6 bytes=512
tokrecv port=1 l=1 s=0 e=6 g=6 row=16 tokens=1 id=7 bytes=256
wait    id=7
acc     l=1 s=0 e=6 g=6 row=16 tokens=1 id=8
load    ch=0 l=1 s=0 e=7 j=0 id=9 bytes=6144 addr=0x6000 keep=1
free    l=1 s=0 e=1 j=0 id=10
sync    l=1 s=0
halt
"""

GOLDEN_TASKS_HEX = (
    "4653413303000200000102001100000000000300000000000000000000000000"
    "0100000001000000060002000000000001000000001800000030000000000000"
    "0c00000000000000000000000000000001000000000000000000000000000000"
    "0201000001000000060002000000000002000000001800000000000000000000"
    "0300000001000000060000000000000003000000001800000000000000000000"
    "0b00000001000000060000000000020004000000000100000000000000000000"
    "0c00000000000000000000000000000003000000000000000000000000000000"
    "0c00000000000000000000000000000004000000000000000000000000000000"
    "0400000001000000060000000000000005000000030000000000000000000000"
    "0c00000000000000000000000000000005000000000000000000000000000000"
    "0700000001000000060004000000020006000000000200000000000000000000"
    "0b01000001000000060006001000010007000000000100000000000000000000"
    "0c00000000000000000000000000000007000000000000000000000000000000"
    "0600000001000000060006001000010008000000000000000000000000000000"
    "0100010001000000070000000000000009000000001800000060000000000000"
    "050000000100000001000000000000000a000000000000000000000000000000"
    "0900000001000000000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)

GOLDEN_DYNAMIC_TEXT = """\
# fsedpc ISA v3
.chiplet 1
.mode dynamic
.channels 1
.ports 0 2            # neighbour chiplet of port 0, port 1
dense   l=0 tokens=0
sync    l=0
streams l=0
foreach n=11
when    home n=1
load    ch=* l=0 e=* j=* bytes=0 addr=*
when    inbound n=1
recv    port=* l=0 e=* j=* bytes=0
when    member n=1
ffn     l=0 e=* j=* tokens=0
when    forward n=2
where   next
send    port=* l=0 e=* j=* bytes=0
when    visit n=1
free    l=0 e=* j=*
sync    l=0
halt
"""

GOLDEN_DYNAMIC_HEX = (
    "4653413303000100010102001100000000000200000000000000000000000000"
    "080000000000ffff000000000000000000000000000000000000000000000000"
    "090000000000ffff000000000000000000000000000000000000000000000000"
    "100000000000ffff000000000000000000000000000000000000000000000000"
    "110000000000000000000000000000000b000000000000000000000000000000"
    "1200010000000000000000000000000001000000000000000000000000000000"
    "01ff00000000ffffffffffff000000000000000000000000ffffffffffffffff"
    "1200050000000000000000000000000001000000000000000000000000000000"
    "03ff00000000ffffffffffff0000000000000000000000000000000000000000"
    "1200020000000000000000000000000001000000000000000000000000000000"
    "040000000000ffffffffffff0000000000000000000000000000000000000000"
    "1200030000000000000000000000000002000000000000000000000000000000"
    "1300010000000000000000000000000000000000000000000000000000000000"
    "02ff00000000ffffffffffff0000000000000000000000000000000000000000"
    "1200060000000000000000000000000001000000000000000000000000000000"
    "050000000000ffffffffffff0000000000000000000000000000000000000000"
    "090000000000ffff000000000000000000000000000000000000000000000000"
    "1f00000000000000000000000000000000000000000000000000000000000000"
)
