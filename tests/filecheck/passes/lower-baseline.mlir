// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=ep trace="%inputs/small-4c.npz"}' | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=ep trace="%inputs/small-4c.npz"}' | fsedpc opt | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=1 buffers=4},lower-baseline{strategy=tp trace="%inputs/small-4c.npz"}' | filecheck %s --check-prefix=TP
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,lower-baseline{strategy=nope trace="%inputs/small-4c.npz"}' 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,lower-baseline{strategy=ep}' 2>&1 | filecheck %s --check-prefix=NOTRACE

// Expert parallel: the layer records its strategy; each chiplet's program is the explicit task
// instructions of both steps (ids in `n`; a wait is a dependency on the task whose id it holds):
// token groups to the owners (toksend, and tokrecv with the same id; shard = token group, z = its
// rows), outputs back and accumulated (acc), and the owner streams its experts' tiles (load, ffn;
// the load into a buffer waits for the FFN that last used it, B = 4), then sync.
// CHECK:      fsedp.baseline layer 0 strategy "ep" steps 2 skip_single 0
// CHECK:      dataflow.program chiplet 0 mode static {
// CHECK-NEXT:   dataflow.dense layer 0
// CHECK-NEXT:   dataflow.instructions layer 0 offsets array<i32: 0, 37, 88>
// CHECK-SAME:     kind [toksend, tokrecv, wait, toksend, tokrecv, wait, toksend, tokrecv, wait, acc, tokrecv, wait, wait, wait, wait, wait, toksend, tokrecv, wait, wait, wait, wait, wait, toksend, load, wait, ffn, load, wait, ffn, load, wait, ffn, load, wait, ffn, sync,
// CHECK-SAME:     expert array<i32: 3, 1, 0, 1, 2, 0, 2, 3, 0, 3, 1, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
// CHECK-SAME:     shard array<i32: 0, 2, 0, 2, 1, 0, 1, 4, 0, 4, 6, 0, 0, 0, 0, 0, 6, 5, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 1, 2, 0, 2, 3, 0, 3, 0,
// CHECK-SAME:     n array<i64: 1, 5, 5, 6, 7, 7, 8, 19, 19, 20, 33, 26, 28, 30, 32, 33, 34, 44, 37, 39, 41, 43, 44, 45, 49, 49, 50, 51, 51, 52, 53, 53, 54, 55, 55, 56, 0,
// CHECK-SAME:     arg array<i64: 32, 32, 0, 32, 32, 0, 32, 32, 0, 0, 32, 0, 0, 0, 0, 0, 32, 32, 0, 0, 0, 0, 0, 32, 768, 0, 1, 768, 0, 1, 768, 0, 1, 768, 0, 1, 0,
// CHECK:      dataflow.program chiplet 3 mode static {

// Tensor parallel, once per step: every chiplet's tokens are all-gathered (toksend/tokrecv of expert
// 65535, `e=*`: the whole token set), every chiplet loads its own slice (1 tile here) of each active
// expert and applies it to the gathered rows routed to that expert (ffn with x = sets = 1), and the
// partial outputs, summed over experts, are reduce-scattered once (acc, reduce).
// TP:      fsedp.baseline layer 0 strategy "tp"
// TP:      dataflow.program chiplet 0 mode static {
// TP:        kind [toksend, toksend, tokrecv, tokrecv, wait, toksend, tokrecv, load, wait, wait, wait, wait, ffn, load, wait, wait, ffn, load, wait, wait, wait, ffn, load, wait, ffn, tokrecv, wait, acc, tokrecv, wait, acc, tokrecv, wait, acc, wait, wait, wait, reduce, wait, wait, reduce, wait, wait, reduce, sync,
// TP-SAME:   x array<i32: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1,
// TP-SAME:   expert array<i32: 65535, 65535, 65535, 65535, 0, 65535, 65535, 3, 0, 0, 0, 0, 3, 1, 0, 0, 1, 2, 0, 0, 0, 2, 0, 0, 0, 65535, 0, 65535,

// ERR: in pass 'lower-baseline': unknown strategy 'nope'; expected one of ep, ep-serial, hydra, ep-cache, tp, tp-per-expert, dp, fsdp
// NOTRACE: lower-baseline needs a routing trace
