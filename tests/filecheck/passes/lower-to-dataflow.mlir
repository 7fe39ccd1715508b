// RUN: fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams,lower-to-dataflow' | filecheck %s
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,lower-to-dataflow' 2>&1 | filecheck %s --check-prefix=NOSCHED

// One routing-independent program per chiplet; every chiplet's MoE layers run one shared
// when/where template.
// CHECK:      dataflow.template name fsedp {
// CHECK-NEXT:   dataflow.streams
// CHECK-NEXT:   dataflow.foreach_shard {
// CHECK-NEXT:     dataflow.when cond home {
// CHECK-NEXT:       dataflow.load
// CHECK-NEXT:     }
// CHECK-NEXT:     dataflow.when cond inbound {
// CHECK-NEXT:       dataflow.recv
// CHECK-NEXT:     }
// CHECK-NEXT:     dataflow.when cond member {
// CHECK-NEXT:       dataflow.ffn
// CHECK-NEXT:     }
// CHECK-NEXT:     dataflow.when cond forward {
// CHECK-NEXT:       dataflow.where policy next {
// CHECK-NEXT:         dataflow.send
// CHECK-NEXT:       }
// CHECK-NEXT:     }
// CHECK-NEXT:     dataflow.when cond visit {
// CHECK-NEXT:       dataflow.free
// CHECK-NEXT:     }
// CHECK-NEXT:   }
// CHECK-NEXT:   dataflow.sync
// CHECK-NEXT: }
// CHECK:      dataflow.program chiplet 0 mode dynamic {
// CHECK-NEXT:   dataflow.dense layer 0
// CHECK-NEXT:   dataflow.layer layer 0 template fsedp
// CHECK-NEXT: }
// CHECK:      dataflow.program chiplet 1 mode dynamic {
// CHECK:      dataflow.program chiplet 2 mode dynamic {
// CHECK:      dataflow.program chiplet 3 mode dynamic {

// NOSCHED: error: in pass 'lower-to-dataflow': lower-to-dataflow needs schedules; run schedule-streams first
