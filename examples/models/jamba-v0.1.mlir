builtin.module attributes {moe.model = "jamba-v0.1", moe.num_layers = 32 : i64} {
  moe.dense 0 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 1 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 1 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 2 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 3 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 3 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 4 "attention+mlp" flops_per_token 436207616 weight_bytes 436207616
  moe.dense 5 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 5 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 6 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 7 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 7 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 8 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 9 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 9 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 10 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 11 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 11 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 12 "attention+mlp" flops_per_token 436207616 weight_bytes 436207616
  moe.dense 13 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 13 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 14 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 15 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 15 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 16 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 17 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 17 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 18 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 19 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 19 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 20 "attention+mlp" flops_per_token 436207616 weight_bytes 436207616
  moe.dense 21 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 21 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 22 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 23 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 23 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 24 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 25 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 25 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 26 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 27 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 27 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 28 "attention+mlp" flops_per_token 436207616 weight_bytes 436207616
  moe.dense 29 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 29 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
  moe.dense 30 "mamba+mlp" flops_per_token 562905088 weight_bytes 562905088
  moe.dense 31 mamba flops_per_token 210583552 weight_bytes 210583552
  moe.layer 31 experts 16 top_k 2 d_model 4096 d_ffn 14336 swiglu bf16
}
