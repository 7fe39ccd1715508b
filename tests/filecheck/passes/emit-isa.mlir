// RUN: rm -rf %t && fsedpc opt %inputs/small.mlir -p 'attach-target{target="%inputs/slow-links-2x2.toml"},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"},lower-to-dataflow,expand-dataflow,emit-isa{output-dir="%t"}' > /dev/null
// RUN: filecheck %s --input-file %t/chiplet_0.fsa
// RUN: filecheck %s --input-file %t/program.json --check-prefix=MANIFEST
// RUN: fsedpc disasm %t/streams.bin | filecheck %s --check-prefix=TABLES
// RUN: rm -rf %t.dyn && fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts,virtualize-streams,schedule-streams,lower-to-dataflow,emit-isa{output-dir="%t.dyn"}' > /dev/null
// RUN: filecheck %s --input-file %t.dyn/chiplet_2.fsa --check-prefix=DYN

// On a 2x2 system with slow links (so the streams go both ways round the ring), step 0 on
// chiplet 0: the dense part and its barrier, the `table` record naming the step's stream table
// (stored once for all chiplets in streams.bin, below), then per stream one range
// instruction per role: loads from its DRAM channel (which shards, at which address, where they
// start computing and end), receives and sends per port (a short stream's shards may arrive by
// both), FFNs when chiplet 0 is in S_e, frees; then the barrier. Step 1 follows the same shape.
// CHECK:      # fsedpc ISA v3
// CHECK-NEXT: .chiplet 0
// CHECK-NEXT: .mode static
// CHECK-NEXT: .channels 1
// CHECK-NEXT: .ports 1 2
// CHECK-NEXT: dense   l=0 s=0 tokens=1
// CHECK-NEXT: sync    l=0 s=0
// CHECK-NEXT: table   l=0 s=0 n=4
// CHECK-NEXT: loads   ch=0 l=0 s=0 e=0 j=0 stride=4 n=2 bytes=384 addr=0x0 entry=0 end=0
// CHECK-NEXT: recvs   port=0 l=0 s=0 e=0 n=2 bytes=384
// CHECK-NEXT: recvs   port=1 l=0 s=0 e=0 n=4 bytes=384
// CHECK-NEXT: ffns    l=0 s=0 e=0 n=8 tokens=1
// CHECK-NEXT: frees   l=0 s=0 e=0 n=8
// CHECK-NEXT: loads   ch=0 l=0 s=0 e=3 j=0 stride=4 n=2 bytes=384 addr=0x900 entry=0 end=1
// CHECK-NEXT: recvs   port=0 l=0 s=0 e=3 n=6 bytes=384
// CHECK-NEXT: sends   port=1 l=0 s=0 e=3 n=6 bytes=384
// CHECK-NEXT: ffns    l=0 s=0 e=3 n=8 tokens=1
// CHECK-NEXT: frees   l=0 s=0 e=3 n=8
// CHECK-NEXT: loads   ch=0 l=0 s=0 e=1 j=0 stride=4 n=2 bytes=384 addr=0x300 entry=2 end=2
// CHECK-NEXT: sends   port=1 l=0 s=0 e=1 n=2 bytes=384
// CHECK-NEXT: frees   l=0 s=0 e=1 n=2
// CHECK-NEXT: loads   ch=0 l=0 s=0 e=2 j=0 stride=4 n=2 bytes=384 addr=0x600 entry=1 end=3
// CHECK-NEXT: recvs   port=1 l=0 s=0 e=2 n=4 bytes=384
// CHECK-NEXT: sends   port=0 l=0 s=0 e=2 n=6 bytes=384
// CHECK-NEXT: frees   l=0 s=0 e=2 n=6
// CHECK-NEXT: sync    l=0 s=0
// CHECK-NEXT: dense   l=0 s=1 tokens=1
// CHECK-NEXT: sync    l=0 s=1
// CHECK-NEXT: table   l=0 s=1 n=3
// CHECK:      sync    l=0 s=1
// CHECK-NEXT: halt

// MANIFEST: "edited": false
// MANIFEST: "layout.npz": "{{[0-9a-f]+}}"
// MANIFEST: "streams.bin": "{{[0-9a-f]+}}"
// MANIFEST: "trace.npz": "{{[0-9a-f]+}}"
// MANIFEST: "format": "fsedpc-program"
// MANIFEST: "manifest_sha256": "{{[0-9a-f]+}}"
// MANIFEST: "mode": "static"
// MANIFEST: "bin": "chiplet_0.bin"

// The stream tables, once per step for every chiplet (R6 order, S_e as a chiplet bitmask;
// `short`: each shard the shorter way round from its home).
// TABLES:      # fsedpc stream tables v3
// TABLES:      table   l=0 s=0 n=4
// TABLES-NEXT: stream  dir=short l=0 s=0 e=0 members=0x1
// TABLES-NEXT: stream  dir=ccw l=0 s=0 e=3 members=0xf
// TABLES-NEXT: stream  dir=short l=0 s=0 e=1 members=0x4
// TABLES-NEXT: stream  dir=cw l=0 s=0 e=2 members=0xa
// TABLES:      table   l=0 s=1 n=3
// TABLES-NEXT: stream  dir=short l=0 s=1 e=0 members=0xe

// The dynamic program is one step's template; the controller runs it every step.
// DYN:      .chiplet 2
// DYN-NEXT: .mode dynamic
// DYN-NEXT: .channels 1
// DYN-NEXT: .ports 0 3
// DYN-NEXT: dense   l=0 tokens=0
// DYN-NEXT: sync    l=0
// DYN-NEXT: streams l=0
// DYN-NEXT: foreach n=11
// DYN-NEXT: when    home n=1
// DYN-NEXT: load    ch=* l=0 e=* j=* bytes=0 addr=*
// DYN:      when    forward n=2
// DYN-NEXT: where   next
// DYN-NEXT: send    port=*
// DYN:      sync    l=0
// DYN-NEXT: halt
