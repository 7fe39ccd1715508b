builtin.module attributes {moe.model = "olmoe-1b-7b", moe.num_layers = 16 : i64} {
  moe.dense 0 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 0 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 1 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 1 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 2 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 2 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 3 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 3 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 4 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 4 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 5 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 5 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 6 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 6 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 7 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 7 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 8 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 8 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 9 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 9 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 10 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 10 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 11 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 11 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 12 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 12 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 13 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 13 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 14 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 14 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
  moe.dense 15 attention flops_per_token 33554432 weight_bytes 33554432
  moe.layer 15 experts 64 top_k 8 d_model 2048 d_ffn 1024 swiglu bf16
}
