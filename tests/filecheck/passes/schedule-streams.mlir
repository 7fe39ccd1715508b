// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"}' | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target="%inputs/slow-links-2x2.toml"},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"}' | filecheck %s --check-prefix=SLOW
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target="%inputs/slow-links-2x2.toml"},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams{direction=balanced},schedule-streams{mode=static trace="%inputs/small-4c.npz"}' | filecheck %s --check-prefix=SLOWB
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=2},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"}' | filecheck %s --check-prefix=B2
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams' | filecheck %s --check-prefix=DYN
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams{mode=static}' 2>&1 | filecheck %s --check-prefix=NOTRACE
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=ring-8},shard-experts,virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"}' 2>&1 | filecheck %s --check-prefix=CHIPLETS

// Two routed steps of 4 tokens (one per chiplet), top-2 of 4 experts. Per step: the streams in
// their global order (R6, heavy/light paired) with their ring direction; per stream its needing
// set S_e as chiplet ids (member_offsets index them) and each member's local token count, so no
// later pass reads the trace; the scheduler's estimate; and the plan it was computed under (a
// schedule whose plan changed is stale). The step is DRAM-bound and one way round keeps the
// links off the critical path, so every stream goes clockwise (one virtual network, R4). The routing
// itself travels in the IR (`fsedp.routing`; gate weights as float32 bit patterns).
// CHECK: fsedp.static_schedule layer 0 steps 2 shards 8 buffers 4
// CHECK-SAME: offsets array<i32: 0, 4, 7> experts array<i32: 0, 3, 1, 2, 0, 2, 1>
// CHECK-SAME: directions array<i8: 1, 1, 1, 1, 1, 1, 1> member_offsets array<i32: 0, 1, 5, 6, 8, 11, 13, 16>
// CHECK-SAME: members array<i32: 0, 0, 1, 2, 3, 2, 1, 3, 1, 2, 3, 0, 2, 0, 1, 3>
// CHECK-SAME: tokens array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1> estimated_ns array<i64: 333, 303>
// CHECK: fsedp.routing layers [0] steps 2 tokens 4 top_k 2 chiplets 4 meta "{{.*}}"
// CHECK-SAME: token_chiplet array<i32: 0, 1, 2, 3> experts array<i32: 0, 3, 3, 2, 1, 3, 2, 3, 1, 2, 0, 1, 0, 2, 1, 0> gate_bits

// With slow links one way would bind. The per-shard policy (the default) sends some experts one
// way and lets others' shards each take the shorter way round (direction 0, SHORT; 2, SHORT
// with ties counter-clockwise); in step 1 the local search after the greedy balance (links
// bind) moves its last two experts to SHORT ways, 3966 -> 3198 ns ...
// SLOW: directions array<i8: 0, -1, 0, 1, 0, 0, 2>
// SLOW: estimated_ns array<i64: 3198, 3198>
// ... where one direction per expert (balanced) balances the two links at a higher estimate.
// SLOWB: directions array<i8: 1, -1, 1, 1, 1, -1, -1>
// SLOWB: estimated_ns array<i64: 4734, 4734>

// With two buffers there is no room for a second direction's escape slot (R4: B >= 3), so
// every stream goes clockwise.
// B2: directions array<i8: 1, 1, 1, 1, 1, 1, 1>

// DYN: fsedp.streams layer 0 ring [0, 1, 3, 2] order paired direction per-shard
// DYN-NEXT: fsedp.dynamic_schedule layer 0

// NOTRACE: error: trace: in pass 'schedule-streams': mode=static needs a routing trace
// CHIPLETS: small-4c.npz: error: chiplets: in pass 'schedule-streams': trace spreads tokens over 4 chiplets but ring-8 has 8
