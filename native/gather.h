// Data movement as an index map: y[i] = x[map[i]] for map[i] >= 0, else fill[-1 - map[i]],
// for elements of `itemsize` bytes (1, 2, 4 or 8; copied as bits). lowp.runtime.replay
// computes the map of a data-movement step (Slice, Transpose, Pad, Gather, ...) once per
// feed signature by running the step on element indices, so the copy is exactly the step's.
#pragma once
#include <cstdint>
#include <vector>

namespace lowp {

struct TakeArgs {
  const uint8_t* x = nullptr;
  const uint8_t* fill = nullptr;
  const int32_t* map = nullptr;
  uint8_t* y = nullptr;
  int64_t n = 0;  // elements of y (and of map)
  int itemsize = 4;
};

void run_take(const TakeArgs& a, int threads);

// The same copy as runs of consecutive elements: run r copies len[r] elements from x at
// src[r] (or from fill at -1 - src[r] when src[r] < 0) to y at dst[r] (element indices).
// `take_runs` finds them in a map; where they are long (a nearest upsampling or a slice of
// channels-last data: whole pixels), one memcpy each beats the element loop.
struct TakeRuns {
  std::vector<int64_t> src, dst, len;
};
TakeRuns take_runs(const int32_t* map, int64_t n);
void run_take_runs(const TakeArgs& a, const TakeRuns& runs, int threads);

// The same copy where the map transposes the last two axes of (batches, rows, cols) data:
// y[b, c, r] = x[base + (b rows + r) cols + c] (a layout conversion between channels-last
// and channels-first, a Transpose of two axes). `take_transpose` finds it in a map (false
// when the map is another one); `run_take_transpose` copies it tile by tile, so that the
// reads along a column stay in cache (the element loop read each cache line once per
// column: 10x slower than numpy's copy on a (1, 128, 128, 32) float conversion).
struct TakeTranspose {
  int64_t base = 0, batches = 0, rows = 0, cols = 0;
};
bool take_transpose(const int32_t* map, int64_t n, TakeTranspose* t);
void run_take_transpose(const TakeArgs& a, const TakeTranspose& t, int threads);

// A block copy: `rows` rows of `width` bytes of x (contiguous) into y, whose rows are
// `y_width` bytes, starting at byte `offset` of each (a Concat's part into its output).
void run_copy_block(const uint8_t* x, uint8_t* y, int64_t rows, int64_t width,
                    int64_t y_width, int64_t offset, int threads);

// Rows interleaved: row r of y (`count` * `width` bytes) is row r of parts[0], then of
// parts[1], ... (each contiguous, `rows` rows of `width` bytes): a Concat along a last axis
// of parts of one width in one pass over y, where run_copy_block makes one pass per part
// (as ONNX Runtime's Concat does: core/providers/cpu/tensor/concat.cc, a strided copy each).
// Parts of 4 bytes (one float32), two to four of them, move four rows at a time through
// SSE2 shuffles (the same bytes; three (12,544, 1) float parts: 10.2 -> 3.7 us).
void run_interleave_rows(const uint8_t* const* parts, int64_t count, uint8_t* y,
                         int64_t rows, int64_t width);

// Gather along an axis with indices read at run time (an embedding lookup of token ids):
// y[o, j, :] = x[o, idx[j] (+ n if negative), :] for `outer` blocks of `n` rows of `row`
// bytes. An index outside [-n, n) gives a zero row and is written to status[1] with
// status[0] = 1 (the kernel never reads out of bounds; the caller raises on the status).
void run_gather_rows(const uint8_t* x, const int64_t* idx, uint8_t* y, int64_t outer,
                     int64_t n, int64_t m, int64_t row, int64_t* status, int threads);
// the same with int32 indices (tf2onnx's loop counters)
void run_gather_rows(const uint8_t* x, const int32_t* idx, uint8_t* y, int64_t outer,
                     int64_t n, int64_t m, int64_t row, int64_t* status, int threads);

}  // namespace lowp
