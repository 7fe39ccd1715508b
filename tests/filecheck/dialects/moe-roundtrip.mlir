// RUN: fsedpc opt %s | filecheck %s
// RUN: fsedpc opt %s | fsedpc opt | filecheck %s
// RUN: fsedpc opt %s --print-op-generic | fsedpc opt | filecheck %s
// RUN: fsedpc opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

builtin.module attributes {moe.model = "roundtrip", moe.num_layers = 3 : i64} {
  moe.dense 0 "attention+mlp" flops_per_token 2048 weight_bytes 2048
  moe.dense 1 attention flops_per_token 1024 weight_bytes 1024
  moe.layer 1 experts 8 top_k 2 d_model 64 d_ffn 128 swiglu bf16
  moe.dense 2 attention flops_per_token 1024 weight_bytes 1024
  moe.layer 2 experts 16 top_k 4 d_model 64 d_ffn 32 shared 2 x 64 gelu fp8 {note = "kept"}
}

// CHECK:      builtin.module attributes {moe.model = "roundtrip", moe.num_layers = 3 : i64} {
// CHECK-NEXT:   moe.dense 0 "attention+mlp" flops_per_token 2048 weight_bytes 2048
// CHECK-NEXT:   moe.dense 1 attention flops_per_token 1024 weight_bytes 1024
// CHECK-NEXT:   moe.layer 1 experts 8 top_k 2 d_model 64 d_ffn 128 swiglu bf16
// CHECK-NEXT:   moe.dense 2 attention flops_per_token 1024 weight_bytes 1024
// CHECK-NEXT:   moe.layer 2 experts 16 top_k 4 d_model 64 d_ffn 32 shared 2 x 64 gelu fp8 {note = "kept"}
// CHECK-NEXT: }

// GENERIC: "moe.layer"() <{index = 1 : i64, num_experts = 8 : i64, top_k = 2 : i64, d_model = 64 : i64, d_ffn = 128 : i64, num_shared = 0 : i64, d_ffn_shared = 0 : i64, activation = "swiglu", dtype = "bf16"}> : () -> ()
