// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"},lower-to-dataflow,expand-dataflow' | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams,lower-to-dataflow,expand-dataflow' | filecheck %s --check-prefix=DYN

// The template becomes the explicit instructions of both steps, kept in dense arrays
// (opcodes: 1 load, 2 send, 3 recv, 4 ffn, 5 free, 9 sync; units are DRAM channels or ports).
// CHECK:      dataflow.program chiplet 0 mode static {
// CHECK-NEXT:   dataflow.dense layer 0
// CHECK-NEXT:   dataflow.instructions layer 0 offsets array<i32: 0, [[S0:[0-9]+]], [[S1:[0-9]+]]> opcode array<i8: 1,
// CHECK-NOT:    dataflow.when
// CHECK:      dataflow.program chiplet 3 mode static {

// Dynamic programs keep their when/where template.
// DYN: dataflow.program chiplet 0 mode dynamic {
// DYN: dataflow.when cond home {
