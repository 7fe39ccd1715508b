builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
  fsedp.streams layer 0 ring [0, 1, 2, 3] order paired direction balanced
}
