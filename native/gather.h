// Data movement as an index map: y[i] = x[map[i]] for map[i] >= 0, else fill[-1 - map[i]],
// for elements of `itemsize` bytes (1, 2, 4 or 8; copied as bits). lowp.runtime.replay
// computes the map of a data-movement step (Slice, Transpose, Pad, Gather, ...) once per
// feed signature by running the step on element indices, so the copy is exactly the step's.
#pragma once
#include <cstdint>

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

// A block copy: `rows` rows of `width` bytes of x (contiguous) into y, whose rows are
// `y_width` bytes, starting at byte `offset` of each (a Concat's part into its output).
void run_copy_block(const uint8_t* x, uint8_t* y, int64_t rows, int64_t width,
                    int64_t y_width, int64_t offset, int threads);

}  // namespace lowp
