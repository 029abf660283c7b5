// Driver layer: ONNX Attention (opset 23 and 24) as ONNX Runtime 1.32's CPU kernel computes it
// (lowp.runtime.float_attention, docs/operators.md (O303), (O311)): per batch entry and query
// head, one MLAS SGEMM of scale * Q·Kᵀ (the mask preloaded into C), softcap, the mask add,
// MLAS's softmax of the rows and one MLAS SGEMM by V, each with the existing kernels
// (run_mlas_sgemm on one thread, the active path's softmax_rows). The (batch, head) pairs
// are the tasks of the thread pool; each is computed the same way whatever thread runs it,
// so the values never depend on the thread count.
#pragma once
#include <cstdint>

namespace lowp {

struct AttentionArgs {
  const float* q = nullptr;  // 4-D (batch, heads, seq, head) or 3-D (batch, seq, heads * head)
  const float* k = nullptr;  // the same layout with kv_heads and kv_seq (head floats a row)
  const float* v = nullptr;  // the same with v_head floats a row
  // past keys and values, (batch, kv_heads, past, head / v_head), or null
  const float* past_k = nullptr;
  const float* past_v = nullptr;
  // the additive mask, (mask_batch, mask_heads, seq, total) floats, or the boolean one as
  // bytes (0: hidden); both null: none. mask_batch and mask_heads are 1 (broadcast) or the
  // batch and head counts.
  const float* mask = nullptr;
  const uint8_t* bool_mask = nullptr;
  int64_t mask_batch = 1, mask_heads = 1;
  const int64_t* valid = nullptr;  // nonpad_kv_seqlen, batch values in [0, total], or null
  float* y = nullptr;              // Q's layout with v_head floats a head
  // (batch, kv_heads, total, head / v_head): past then K (V); null when not output (then
  // past is 0)
  float* present_k = nullptr;
  float* present_v = nullptr;
  float* qk = nullptr;  // (batch, heads, seq, total) in `mode`, or null
  int64_t batch = 0, heads = 0, kv_heads = 0, seq = 0, kv_seq = 0, past = 0, head = 0,
          v_head = 0;
  bool three_d = false;
  float scale = 1.0f;
  float softcap = 0.0f;  // 0: none
  float low = 0.0f;      // the masked value (the inputs' type's lowest)
  int mode = -1;         // qk_matmul_output_mode when qk is output
  bool causal = false;   // the causal pattern (the decode step already excluded)
  bool fold = false;     // the mask preloaded into Q·Kᵀ's C (no softcap, mode not 0 or 1)
  bool half = false;     // float16 inputs: each step's result rounded to float16
  // K's (V's times Y's) leading dimension as MLAS is handed it is 1 (its N = 1 kernel)
  bool k_unit_ld = true, v_unit_ld = true;
};

// Runs the node; false (nothing written) when a nonpad_kv_seqlen value is outside
// [0, past + kv_seq]. threads <= 0: all.
bool run_float_attention(const AttentionArgs& a, int threads);

}  // namespace lowp
