// RUN: fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4}' | filecheck %s
// RUN: fsedpc opt %s -p 'attach-target{target=paper-4x4},shard-experts{buffers=6}' | filecheck %s --check-prefix=AUTO
// RUN: fsedpc opt %s -p 'attach-target{target=paper-4x4},shard-experts' | filecheck %s --check-prefix=AUTOB
// RUN: not fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=3}' 2>&1 | filecheck %s --check-prefix=DIV
// RUN: not fsedpc opt %s -p 'shard-experts' 2>&1 | filecheck %s --check-prefix=NOTARGET

builtin.module attributes {moe.model = "m", moe.num_layers = 2 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  moe.layer 1 experts 4 top_k 2 d_model 16 d_ffn 32 shared 1 x 64 gelu int8
}

// M = 2 shards per chiplet x 4 chiplets = 8; a SwiGLU shard is 3 x 16 x 32/8 x 2 bytes = 384;
// shards are dealt round-robin over the four DRAM channels (one per chiplet on paper-2x2).
// CHECK:      moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
// CHECK-NEXT: fsedp.shard_plan layer 0 shards 8 buffers 4 shard_bytes 384 shared_shard_bytes 0 channels [0, 1, 2, 3] channel_ids [0, 0, 0, 0]
// CHECK-NEXT: moe.layer 1
// CHECK-NEXT: fsedp.shard_plan layer 1 shards 8 buffers 4 shard_bytes 128 shared_shard_bytes 256 channels [0, 1, 2, 3] channel_ids [0, 0, 0, 0]

// Automatic g: the smallest that divides F = 32 over 16 chiplets is 1 (M = 16, 2 columns each);
// DRAM only on the corner chiplets of the paper's 4x4 mesh.
// AUTO: fsedp.shard_plan layer 0 shards 16 buffers 6 shard_bytes 192 shared_shard_bytes 0 channels [0, 3, 12, 15] channel_ids [0, 0, 0, 0]

// DIV: error: in pass 'shard-experts': 'moe.layer' layer 0: d_ffn = 32 is not divisible by M = 3 x 4 chiplets = 12 shards; shards-per-chiplet values that divide it: [1, 2, 4, 8]
// NOTARGET: error: in pass 'shard-experts': shard-experts needs a chiplet system on the module; run attach-target first

// buffers=0 (the default): the shard size chosen for 6 buffers, then as many buffers as fit in
// half the SRAM, at most 32 (these shards are tiny, so 32).
// AUTOB: fsedp.shard_plan layer 0 shards 16 buffers 32
// AUTOB: fsedp.shard_plan layer 1 shards 16 buffers 32

// Re-deciding an upstream stage drops everything derived from it: a later pass then asks for
// what is missing instead of running on a schedule computed under the old plan.
// RUN: not fsedpc opt %inputs/small.mlir -p 'attach-target{target=paper-2x2},shard-experts{buffers=4},virtualize-streams,schedule-streams{mode=static trace="%inputs/small-4c.npz"},shard-experts{buffers=2},lower-to-dataflow,expand-dataflow' 2>&1 | filecheck %s --check-prefix=STALE
// STALE: error: in pass 'lower-to-dataflow': lower-to-dataflow needs schedules; run schedule-streams first
