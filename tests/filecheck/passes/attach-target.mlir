// RUN: fsedpc opt %s -p 'attach-target{target=paper-2x2}' | filecheck %s
// RUN: fsedpc opt %s -p 'attach-target{target="%examples/targets/ring-8.toml"}' | filecheck %s --check-prefix=RING
// RUN: fsedpc opt %s -p 'attach-target{target=paper-4x4},attach-target{target=ring-8}' | filecheck %s --check-prefix=RING
// RUN: not fsedpc opt %s -p 'attach-target{target=no-such-chip}' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not fsedpc opt %s -p 'attach-target' 2>&1 | filecheck %s --check-prefix=NOOPT

builtin.module attributes {moe.model = "tiny", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 128 swiglu bf16
}

// CHECK:      builtin.module attributes {moe.model = "tiny", moe.num_layers = 1 : i64, chiplet.system = #chiplet.system<name = "paper-2x2", chiplets = 4, topology = "mesh:2x2",
// CHECK-SAME:   links = [[0, 1], [0, 2], [1, 3], [2, 3]], dram_at = [0, 1, 2, 3], ring = [0, 1, 3, 2],
// CHECK-SAME:   chiplet = #chiplet.chiplet<tops_int8 = 3.2768, tops_fp8 = 3.2768, tops_bf16 = 1.6384, tops_fp16 = 1.6384, sram_mib = 8.0, dram_channels = 1, dram_gbps_per_channel = 25.6, dram_latency_ns = 100.0,
// CHECK-SAME:   link = #chiplet.link<gbps = 288.0, latency_ns = 10.0, pj_per_bit = 0.3>>} {
// CHECK-NEXT:   moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 128 swiglu bf16
// CHECK-NEXT: }

// RING:      chiplet.system = #chiplet.system<name = "ring-8", chiplets = 8, topology = "ring",
// RING-SAME:   links = [[0, 1], [0, 7], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]], dram_at = [0, 1, 2, 3, 4, 5, 6, 7], ring = [0, 1, 2, 3, 4, 5, 6, 7]
// RING-NOT:  paper-4x4

// UNKNOWN: fsedpc: error: in pass 'attach-target': unknown target preset 'no-such-chip'; known presets: hbm-8, mesh-4x4, paper-2x2, paper-4x4, ring-8, torus-4x4

// NOOPT: fsedpc: error: -p: bad pass pipeline 'attach-target': attach-target requires argument "target"
