// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=ep trace="%inputs/small-4c.npz"}' | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=ep trace="%inputs/small-4c.npz"}' | fsedpc opt | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=tp trace="%inputs/small-4c.npz"}' | filecheck %s --check-prefix=TP
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,lower-baseline{strategy=nope trace="%inputs/small-4c.npz"}' 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,lower-baseline{strategy=ep}' 2>&1 | filecheck %s --check-prefix=NOTRACE

// Expert parallel: the layer records its strategy; each chiplet's program is the explicit instructions of
// both steps: token groups to the owners (10 toksend, 11 tokrecv; shard = token group), then
// the owner streams its experts' tiles (1 load, 4 ffn, 5 free; B = 4 buffers), outputs go back
// (10/11 with group N + destination) and are accumulated (6 acc), then 9 sync.
// CHECK:      fsedp.baseline layer 0 strategy "ep" steps 2 trace "{{.*}}small-4c.npz" skip_single 0
// CHECK:      dataflow.program chiplet 0 mode static {
// CHECK-NEXT:   dataflow.dense layer 0
// CHECK-NEXT:   dataflow.instructions layer 0 offsets array<i32: 0, 24, 49>
// CHECK-SAME:     opcode array<i8: 10, 11, 10, 11, 10, 11, 6, 11, 10, 11, 10, 1, 4, 5, 1, 4, 5, 1, 4, 5, 1, 4, 5, 9,
// CHECK-SAME:     expert array<i32: 3, 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
// CHECK-SAME:     shard array<i32: 0, 2, 2, 1, 1, 4, 4, 6, 6, 5, 5, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0,
// CHECK-SAME:     arg array<i64: 32, 32, 32, 32, 32, 32, 1, 32, 32, 32, 32, 768, 1, 0, 768, 1, 0, 768, 1, 0, 768, 1, 0, 0,
// CHECK:      dataflow.program chiplet 3 mode static {

// Tensor parallel: every chiplet loads its own slice (1 tile here) of each active expert, all-gathers the
// tokens and reduce-scatters the partial outputs (7 reduce, 6 acc).
// TP:      fsedp.baseline layer 0 strategy "tp"
// TP:      dataflow.program chiplet 0 mode static {
// TP:        opcode array<i8: 10, 10, 11, 11, 10, 11, 1, 4, 5, 11, 6, 11, 6, 11, 6, 7, 7, 7,

// ERR: in pass 'lower-baseline': unknown strategy 'nope'; expected one of ep, ep-serial, hydra, ep-cache, tp, dp, fsdp
// NOTRACE: lower-baseline needs a routing trace
