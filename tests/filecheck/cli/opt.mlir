// RUN: fsedpc opt --list-passes | filecheck %s --check-prefix=LIST
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8},shard-experts' --print-ir-after-all 2>&1 >/dev/null | filecheck %s --check-prefix=AFTERALL
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8},shard-experts' --print-ir-before=shard-experts --print-ir-after=attach-target 2>&1 >/dev/null | filecheck %s --check-prefix=BEFORE
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8},shard-experts' --pass-timing 2>&1 >/dev/null | filecheck %s --check-prefix=TIMING
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8}' --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: fsedpc opt %s -p 'attach-target{target=ring-8}' -o %t.mlir && filecheck %s --input-file %t.mlir --check-prefix=OUT
// RUN: not fsedpc opt %s -p 'attach-target{target=ring-8},no-such-pass' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not fsedpc opt %s -p 'attach-target{target=ring-8}' --print-ir-after=shard-experts 2>&1 | filecheck %s --check-prefix=NOTIN
// RUN: fsedpc opt %S/../inputs/bad-ring.mlir -p 'attach-target{target=paper-2x2}' | filecheck %s --check-prefix=RETARGET

builtin.module attributes {moe.model = "m", moe.num_layers = 1 : i64} {
  moe.layer 0 experts 4 top_k 2 d_model 16 d_ffn 32 swiglu bf16
}

// LIST:      attach-target: Attach `#chiplet.system` for `target` (preset name or path to a .toml) as `chiplet.system`.
// LIST-NEXT:     target: str (required)
// LIST:      emit-isa: Write the per-chiplet instruction streams and program.json into `output-dir`.
// LIST-NEXT:     output-dir: str (required)
// LIST:      schedule-streams:
// LIST-NEXT:     mode: str = 'dynamic'
// LIST-NEXT:     trace: str = ''
// LIST:      shard-experts:
// LIST-NEXT:     shards-per-chiplet: int = 0
// LIST-NEXT:     buffers: int = 0

// AFTERALL:      // -----// IR Dump After attach-target //----- //
// AFTERALL-NOT:  fsedp.shard_plan
// AFTERALL:      // -----// IR Dump After shard-experts //----- //
// AFTERALL:      fsedp.shard_plan layer 0

// BEFORE:      // -----// IR Dump After attach-target //----- //
// BEFORE:      // -----// IR Dump Before shard-experts //----- //
// BEFORE-NOT:  IR Dump After shard-experts

// TIMING: Pass execution timing report
// TIMING: attach-target
// TIMING: shard-experts
// TIMING: Total

// GENERIC: "moe.layer"() <{index = 0 : i64

// OUT: chiplet.system = #chiplet.system<name = "ring-8"

// UNKNOWN: fsedpc: error: -p: bad pass pipeline 'attach-target{target=ring-8},no-such-pass': Unrecognized passes: ['no-such-pass']; known passes: attach-target, shard-experts, virtualize-streams, schedule-streams, lower-to-dataflow, expand-dataflow, lower-baseline, emit-isa
// NOTIN: fsedpc: error: --print-ir-after: pass 'shard-experts' is not in the pipeline

// A module that verifies without a target but not with one: the failure names the pass and the op.
// Re-targeting drops what was decided for the old target (here streams on a ring paper-2x2 lacks).
// RETARGET: moe.layer 0
// RETARGET-NOT: fsedp.streams
