// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"},lower-to-dataflow,expand-dataflow' | filecheck %s
// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams,lower-to-dataflow,expand-dataflow' | filecheck %s --check-prefix=DYN

// The template becomes the explicit instructions of both steps, kept in dense arrays (the ISA's
// record columns, docs/isa.md): per step a `table` row (n = the step's streams) naming its stream
// table, which the layer's fsedp.static_schedule holds once for every chiplet (emit-isa writes it
// to streams.bin), then per stream its range instructions (loads, recvs, sends, ffns, frees; n =
// shard count, unit = DRAM channel or port; loads name their first shard, stride, DRAM address,
// and where the shards start computing (z, entry) and end (x, end)), then sync.
// Step 0 has 18 instructions on chiplet 0: e.g. expert 3 (S_e = all, ring 0-1-3-2) loads shards
// 0 and 4 from address 2304 (after experts 0-2's two shards each), computes from chiplet 0 and
// ends at chiplet 2, the last member cw.
// CHECK:      dataflow.program chiplet 0 mode static {
// CHECK-NEXT:   dataflow.dense layer 0
// CHECK-NEXT:   dataflow.instructions layer 0 offsets array<i32: 0, 18, 34>
// CHECK-SAME:     kind [table, loads, recvs, ffns, frees, loads, recvs, sends, ffns, frees, loads, sends, frees, loads, recvs, sends, frees, sync, table,
// CHECK-SAME:     unit array<i16: 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
// CHECK-SAME:     x array<i32: 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0, 0,
// CHECK-SAME:     expert array<i32: 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 0,
// CHECK-SAME:     y array<i32: 0, 4, 0, 0, 0, 4, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0, 0, 0,
// CHECK-SAME:     z array<i32: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0,
// CHECK-SAME:     n array<i64: 4, 2, 6, 8, 8, 2, 6, 6, 8, 8, 2, 2, 2, 2, 4, 6, 6, 0,
// CHECK-SAME:     arg array<i64: 0, 384, 384, 1, 0, 384, 384, 384, 1, 0, 384, 384, 0, 384, 384, 384, 0, 0,
// CHECK-SAME:     wide array<i64: 0, 0, 0, 0, 0, 2304, 0, 0, 0, 0, 768, 0, 0, 1536, 0, 0, 0, 0,
// CHECK-NOT:    dataflow.when
// CHECK:      dataflow.program chiplet 3 mode static {

// Dynamic programs keep their when/where template.
// DYN: dataflow.template name fsedp {
// DYN: dataflow.when cond home {
// DYN: dataflow.program chiplet 0 mode dynamic {
// DYN: dataflow.layer layer 0 template fsedp
