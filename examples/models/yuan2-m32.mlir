builtin.module attributes {moe.model = "yuan2-m32", moe.num_layers = 24 : i64} {
  moe.dense 0 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 0 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 1 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 1 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 2 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 2 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 3 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 3 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 4 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 4 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 5 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 5 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 6 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 6 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 7 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 7 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 8 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 8 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 9 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 9 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 10 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 10 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 11 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 11 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 12 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 12 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 13 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 13 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 14 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 14 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 15 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 15 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 16 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 16 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 17 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 17 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 18 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 18 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 19 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 19 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 20 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 20 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 21 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 21 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 22 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 22 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
  moe.dense 23 attention flops_per_token 83886080 weight_bytes 83886080
  moe.layer 23 experts 32 top_k 2 d_model 2048 d_ffn 8192 swiglu bf16
}
