// RUN: rm -rf %t && fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"},lower-to-dataflow,expand-dataflow,emit-isa{output-dir="%t"}' > /dev/null
// RUN: filecheck %s --input-file %t/chiplet_0.fsa
// RUN: filecheck %s --input-file %t/program.json --check-prefix=MANIFEST
// RUN: rm -rf %t.dyn && fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams,lower-to-dataflow,emit-isa{output-dir="%t.dyn"}' > /dev/null
// RUN: filecheck %s --input-file %t.dyn/chiplet_2.fsa --check-prefix=DYN

// CHECK:      # fsedpc ISA v1
// CHECK-NEXT: .chiplet 0
// CHECK-NEXT: .mode static
// CHECK-NEXT: .channels 1
// CHECK-NEXT: .ports 1 2
// CHECK-NEXT: dense  l=0 s=0 tokens=1
// CHECK-NEXT: load   ch=0 l=0 s=0 e={{[0-9]+}} j={{[0-9]+}} bytes=384
// CHECK:      sync   l=0 s=0
// CHECK:      dense  l=0 s=1 tokens=1
// CHECK:      sync   l=0 s=1
// CHECK-NEXT: halt

// MANIFEST: "format": "fsedpc-program"
// MANIFEST: "mode": "static"
// MANIFEST: "bin": "chiplet_0.bin"

// The dynamic program is one step's template; the controller runs it every step.
// DYN:      .chiplet 2
// DYN-NEXT: .mode dynamic
// DYN-NEXT: .channels 1
// DYN-NEXT: .ports 0 3
// DYN-NEXT: dense  l=0 tokens=0
// DYN-NEXT: streams l=0
// DYN-NEXT: foreach n=11
// DYN-NEXT: when   home n=1
// DYN-NEXT: load   ch=*
// DYN:      when   forward n=2
// DYN-NEXT: where  next
// DYN-NEXT: send   port=*
// DYN:      sync   l=0
// DYN-NEXT: halt
