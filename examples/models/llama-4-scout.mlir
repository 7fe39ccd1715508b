builtin.module attributes {moe.model = "llama-4-scout", moe.num_layers = 48 : i64} {
  moe.dense 0 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 0 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 1 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 1 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 2 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 2 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 3 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 3 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 4 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 4 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 5 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 5 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 6 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 6 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 7 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 7 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 8 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 8 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 9 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 9 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 10 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 10 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 11 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 11 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 12 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 12 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 13 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 13 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 14 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 14 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 15 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 15 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 16 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 16 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 17 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 17 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 18 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 18 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 19 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 19 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 20 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 20 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 21 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 21 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 22 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 22 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 23 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 23 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 24 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 24 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 25 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 25 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 26 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 26 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 27 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 27 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 28 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 28 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 29 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 29 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 30 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 30 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 31 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 31 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 32 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 32 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 33 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 33 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 34 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 34 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 35 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 35 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 36 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 36 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 37 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 37 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 38 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 38 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 39 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 39 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 40 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 40 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 41 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 41 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 42 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 42 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 43 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 43 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 44 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 44 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 45 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 45 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 46 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 46 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
  moe.dense 47 attention flops_per_token 125829120 weight_bytes 125829120
  moe.layer 47 experts 16 top_k 1 d_model 5120 d_ffn 8192 shared 1 x 8192 swiglu bf16
}
