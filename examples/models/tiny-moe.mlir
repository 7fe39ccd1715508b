builtin.module attributes {moe.model = "tiny-moe", moe.num_layers = 4 : i64} {
  moe.dense 0 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 0 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 1 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 1 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 2 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 2 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
  moe.dense 3 attention flops_per_token 32768 weight_bytes 32768
  moe.layer 3 experts 8 top_k 2 d_model 64 d_ffn 256 swiglu bf16
}
