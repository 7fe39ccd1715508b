// RUN: fsedpc opt %s --split-input-file --verify-diagnostics | filecheck %s

builtin.module attributes {moe.model = "bad"} {
  moe.layer 0 experts 8 top_k 9 d_model 64 d_ffn 128 swiglu bf16
}
// CHECK: moe-invalid.mlir:4:3: error: 'moe.layer' top_k (9) must be <= num_experts (8)

// -----

builtin.module attributes {moe.model = "bad"} {
  moe.layer 0 experts 8 top_k 2 d_model 0 d_ffn 128 swiglu bf16
}
// CHECK: moe-invalid.mlir:11:3: error: 'moe.layer' d_model must be > 0, got 0

// -----

builtin.module attributes {moe.model = "bad"} {
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 128 relu bf16
}
// CHECK: moe-invalid.mlir:18:54: error: Expected one of 'gelu', 'swiglu' (activation)

// -----

builtin.module attributes {moe.model = "bad"} {
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 128 shared 1 x 0 swiglu bf16
}
// CHECK: moe-invalid.mlir:25:3: error: 'moe.layer' d_ffn_shared must be > 0 with 1 shared experts

// -----

builtin.module attributes {moe.model = "bad"} {
  moe.dense 0 attention flops_per_token -5 weight_bytes 10
}
// CHECK: moe-invalid.mlir:32:3: error: 'moe.dense' flops_per_token and weight_bytes must be >= 0

// -----

builtin.module attributes {moe.model = "bad"} {
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 128 swiglu bf32
}
// CHECK: moe-invalid.mlir:39:61: error: Expected one of 'bf16', 'fp16', 'fp8', 'int8' (dtype)
