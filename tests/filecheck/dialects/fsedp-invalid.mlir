// RUN: fsedpc opt %s --split-input-file --verify-diagnostics | filecheck %s
// Rule violations in hand-written fsedp ops are caught by the verifier.

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.shard_plan layer 0 shards 8 buffers 1 shard_bytes 384 shared_shard_bytes 0 channels [0] channel_ids [0]
}
// CHECK: fsedp-invalid.mlir:6:3: error: 'fsedp.shard_plan' R4: a DRAM load next to a critical bubble needs two free shard buffers, so buffers must be >= 2, got 1

// -----

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64, chiplet.system = #chiplet.system<name = "sq", chiplets = 4, topology = "mesh:2x2", links = [[0, 1], [0, 2], [1, 3], [2, 3]], dram_at = [0, 1, 2, 3], ring = [0, 1, 3, 2], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 8.0, dram_channels = 1, dram_gbps_per_channel = 25.6, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 288.0, latency_ns = 10.0, pj_per_bit = 0.3>>} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.streams layer 0 ring [0, 1, 2, 3] order paired direction balanced
}
// CHECK: fsedp-invalid.mlir:14:3: error: 'fsedp.streams' R1: the virtual ring is not a Hamiltonian cycle of sq: ring step 1 -> 2 is not a link of the topology

// -----

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.static_schedule layer 0 steps 1 shards 8 buffers 4 offsets array<i32: 0, 3> experts array<i32: 0, 2, 0> directions array<i8: 1, 1, 1> member_offsets array<i32: 0, 1, 2, 3> members array<i32: 0, 1, 2> tokens array<i32: 1, 1, 1> estimated_ns array<i64: 10> rings array<i8: 0, 0, 0>
}
// CHECK: fsedp-invalid.mlir:22:3: error: 'fsedp.static_schedule' R6: step 0 lists an expert twice; one global order has each stream once

// -----

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.static_schedule layer 0 steps 1 shards 8 buffers 4 offsets array<i32: 0, 2> experts array<i32: 0, 2> directions array<i8: 1, 1> member_offsets array<i32: 0, 0, 1> members array<i32: 1> tokens array<i32: 1> estimated_ns array<i64: 10> rings array<i8: 0, 0>
}
// CHECK: fsedp-invalid.mlir:30:3: error: 'fsedp.static_schedule' R2/R3: every stream needs a non-empty needing set S_e

// -----

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.shard_plan layer 0 shards 8 buffers 2 shard_bytes 384 shared_shard_bytes 0 channels [0] channel_ids [0]
  fsedp.static_schedule layer 0 steps 1 shards 8 buffers 2 offsets array<i32: 0, 2> experts array<i32: 0, 2> directions array<i8: 1, -1> member_offsets array<i32: 0, 1, 2> members array<i32: 0, 1> tokens array<i32: 1, 1> estimated_ns array<i64: 10> rings array<i8: 0, 0>
}
// CHECK: fsedp-invalid.mlir:39:3: error: 'fsedp.static_schedule' R4: streaming on 2 virtual networks needs a free slot per network and one to load into (buffers >= 3)

// -----

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.static_schedule layer 0 steps 1 shards 8 buffers 4 offsets array<i32: 0, 1> experts array<i32: 7> directions array<i8: 3> member_offsets array<i32: 0, 1> members array<i32: 0> tokens array<i32: 1> estimated_ns array<i64: 10> rings array<i8: 0>
}
// CHECK: fsedp-invalid.mlir:47:3: error: 'fsedp.static_schedule' R2: every stream follows the ring in direction 1 or -1, or each shard the shorter way round (0: equal ways clockwise, 2: counter-clockwise)
