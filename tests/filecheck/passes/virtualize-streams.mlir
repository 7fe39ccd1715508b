// RUN: fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4},virtualize-streams' | filecheck %s
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8},shard-experts{buffers=4},virtualize-streams{order=work direction=cw}' | filecheck %s --check-prefix=RING
// RUN: not fsedpc opt %s -p 'attach-target{target=ring-8},virtualize-streams' 2>&1 | filecheck %s --check-prefix=NOPLAN
// RUN: not fsedpc opt %s -p 'attach-target{target=ring-8},shard-experts,virtualize-streams{order=random}' 2>&1 | filecheck %s --check-prefix=BADORDER

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
}

// The R1 ring of the 2x2 mesh is the boustrophedon cycle 0 -> 1 -> 3 -> 2.
// CHECK:      fsedp.shard_plan layer 0 shards 8
// CHECK-NEXT: fsedp.streams layer 0 ring [0, 1, 3, 2] order paired direction per-shard

// RING: fsedp.streams layer 0 ring [0, 1, 2, 3, 4, 5, 6, 7] order work direction cw

// NOPLAN: error: in pass 'virtualize-streams': virtualize-streams needs shard plans; run shard-experts first
// BADORDER: error: order: in pass 'virtualize-streams': order must be one of paired, work, id, got 'random'
