// RUN: not fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{shards-per-chiplet=2 buffers=4}' 2>&1 | filecheck %s
// RUN: not fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{buffers=1}' 2>&1 | filecheck %s --check-prefix=R4
// RUN: fsedpc opt %s -p 'attach-target{target=paper-2x2},shard-experts{buffers=2}' | filecheck %s --check-prefix=AUTO

builtin.module attributes {moe.model = "big", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 8 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
}

// A Mixtral expert (3 x 4096 x 14336 x 2 bytes) in 8 shards is 44 MB a shard: 4 buffers need 168 MiB.
// CHECK: shard-experts-sram.mlir:6:3: error: in pass 'shard-experts': 'moe.layer' layer 0: SRAM too small: 4 shard buffers x 44040192 bytes = 176160768 bytes, but paper-2x2 has 8388608 bytes per chiplet; use more shards-per-chiplet or fewer buffers (>= 2)

// R4: error: in pass 'shard-experts': 'moe.layer' buffers must be >= 2 (R4: a DRAM load next to a critical bubble needs two free shard buffers), got 1

// The automatic choice finds the smallest g whose 2 buffers fit: 3 x 4096 x 14336/(g x 4) x 2 x 2 bytes <= 8 MiB.
// AUTO: fsedp.shard_plan layer 0 shards 112 buffers 2 shard_bytes 3145728
