builtin.module attributes {moe.model = "small", moe.num_layers = 1 : i64} {
  moe.dense 0 attention flops_per_token 1024 weight_bytes 1024
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
}
