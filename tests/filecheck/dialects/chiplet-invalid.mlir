// RUN: fsedpc opt %s --split-input-file --verify-diagnostics | filecheck %s

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "split", chiplets = 4, topology = "links", links = [[0, 1], [2, 3]], dram_at = [0], ring = [0, 1, 2, 3], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 1, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 0.3>>} {
}
// CHECK: chiplet-invalid.mlir:3:77: error: invalid chiplet.system: topology is not connected: components [[0, 1], [2, 3]]

// -----

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "badring", chiplets = 4, topology = "mesh:2x2", links = [[0, 1], [0, 2], [1, 3], [2, 3]], dram_at = [0], ring = [0, 1, 2, 3], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 1, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 0.3>>} {
}
// CHECK: error: invalid chiplet.system: no valid virtual ring (R1): ring step 1 -> 2 is not a link of the topology

// -----

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "short", chiplets = 3, topology = "ring", links = [[0, 1], [1, 2], [0, 2]], dram_at = [0], ring = [0, 1], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 1, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 0.3>>} {
}
// CHECK: error: invalid chiplet.system: no valid virtual ring (R1): ring must visit each of the 3 chiplets exactly once, got [0, 1]

// -----

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "slow", chiplets = 2, topology = "ring", links = [[0, 1]], dram_at = [0], ring = [0, 1], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 1, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 0.0, latency_ns = 8.0, pj_per_bit = 0.3>>} {
}
// CHECK: error: invalid chiplet.link: link bandwidth must be > 0, got 0.0

// -----

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "nodram", chiplets = 2, topology = "ring", links = [[0, 1]], dram_at = [5], ring = [0, 1], chiplet = #chiplet.chiplet<tops_int8 = 8.0, tops_fp8 = 8.0, tops_bf16 = 4.0, tops_fp16 = 4.0, sram_mib = 12.0, dram_channels = 1, dram_gbps_per_channel = 34.1, dram_latency_ns = 100.0, dram_pj_per_bit = 4.0, sram_pj_per_bit = 0.1, pj_per_mac_int8 = 0.1, pj_per_mac_fp8 = 0.1, pj_per_mac_bf16 = 0.4, pj_per_mac_fp16 = 0.4>, link = #chiplet.link<gbps = 256.0, latency_ns = 8.0, pj_per_bit = 0.3>>} {
}
// CHECK: error: invalid chiplet.system: dram_at must list distinct chiplets in 0..1, got [5]

// -----

builtin.module attributes {moe.model = "x", chiplet.system = #chiplet.system<name = "typo", chiplets = 2, topology = "ring", linkz = [[0, 1]]>} {
}
// CHECK: chiplet-invalid.mlir:[[#]]:{{[0-9]+}}: error: Expected 'links' (field 4 of chiplet.system)
