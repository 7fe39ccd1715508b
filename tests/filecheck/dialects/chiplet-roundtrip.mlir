// RUN: fsedpc opt %s | filecheck %s
// RUN: fsedpc opt %s --print-op-generic | fsedpc opt | filecheck %s

builtin.module attributes {moe.model = "sys", chiplet.system = #chiplet.system<name = "tri", chiplets = 3, topology = "links", links = [[0, 1], [1, 2], [0, 2]], dram_at = [0], ring = [0, 2, 1], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 2, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 1.0e-05>>} {
  moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu int8
}

// CHECK:      builtin.module attributes {moe.model = "sys", chiplet.system = #chiplet.system<name = "tri", chiplets = 3, topology = "links", links = [[0, 1], [1, 2], [0, 2]], dram_at = [0], ring = [0, 2, 1],
// CHECK-SAME:   chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 2, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>,
// CHECK-SAME:   link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 1.0e-05>>} {
// CHECK-NEXT:   moe.layer 0 experts 4 top_k 1 d_model 8 d_ffn 16 swiglu int8
// CHECK-NEXT: }
