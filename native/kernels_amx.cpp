// Microkernels, AMX path: the GEMM on AMX-INT8 tiles (tdpbusd, uint8 A x int8 B into int32);
// every other member is the avx512vnni path's. Compiled with its own flags; nothing here
// runs unless dispatch found AMX usable (CPU, OS state and the Linux permission request).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"

namespace lowp {
namespace {

// Rows per call: two row tiles of 16. Tile registers: C 0..3 (2 row tiles x 2 column
// tiles of 16 int32), A 4..5 (16 rows x 64 bytes), B 6..7 (16 k4 rows x 16 columns x 4
// bytes: the packed panel's own layout, one tile per 16 columns).
constexpr int kRows = 16;
constexpr int kMr = 2 * kRows;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// One configuration serves every call: all eight tiles are 16 rows x 64 bytes (the K tail
// is zero-padded instead of configured).
TileConfig make_config() {
  TileConfig c;
  for (int i = 0; i < 8; ++i) {
    c.colsb[i] = 64;
    c.rows[i] = kRows;
  }
  return c;
}

// The tile configuration belongs to the thread: load it before a thread's first tile
// instruction. Another library on the same thread may load its own configuration (or
// release the tiles) between our calls, so the check compares the live configuration.
void configure() {
  static const TileConfig want = make_config();
  TileConfig have;
  _tile_storeconfig(&have);
  if (std::memcmp(&have, &want, sizeof(TileConfig)) != 0) _tile_loadconfig(&want);
}

// A run of K blocks (16 k4 groups each) with one source each for A and B: A block j at
// a + 64 j (row tile R at + 16 R as), B block j at b + 16 j bs (column tile J at + 64 J).
struct Run {
  const uint8_t* a;
  int64_t as;
  const int8_t* b;
  int nblk;
};

// The first n (< 64) of 64 bytes.
inline __mmask64 first_bytes(int64_t n) { return (uint64_t(1) << n) - 1; }

// Copies n bytes (masked: nothing read or written past them).
inline void copy_bytes(uint8_t* d, const uint8_t* s, int64_t n) {
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) _mm512_storeu_si512(d + j, _mm512_loadu_si512(s + j));
  if (j < n) {
    const __mmask64 k = first_bytes(n - j);
    _mm512_mask_storeu_epi8(d + j, k, _mm512_maskz_loadu_epi8(k, s + j));
  }
}

// PackRowsFn: row i at dst + i * kp, the taps' runs one after another, zeros up to kp.
void pack_rows(int64_t n, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               int64_t kp, uint8_t* dst) {
  const int64_t krow = 4 * int64_t(kc4), used = ntaps * krow;
  for (int64_t i = 0; i < n; ++i, dst += kp) {
    for (int t = 0; t < ntaps; ++t) copy_bytes(dst + t * krow, a[i] + tap_off[t], krow);
    // kp - used < 64 bytes of zeros
    if (used < kp) _mm512_mask_storeu_epi8(dst + used, first_bytes(kp - used),
                                           _mm512_setzero_si512());
  }
}

// Per-thread scratch: the im2col rows of A (64-byte aligned, zero past K), the zero-padded
// tail rows of A and of B for the last K block, a C tile for rows past mr, and (fused form)
// the call's C tiles, which the epilogue reads.
struct Scratch {
  std::vector<uint8_t> buf;
  uint8_t* a = nullptr;
  int64_t a_bytes = 0;
  alignas(64) uint8_t atail[kMr * 64];
  alignas(64) int8_t btail[kRows * kPanel * 4];
  alignas(64) int32_t ctmp[kRows * 16];
  alignas(64) int32_t cbuf[kMr * kPanel];
  std::vector<Run> runs;

  uint8_t* rows(int64_t bytes) {
    if (bytes > a_bytes) {
      buf.assign(size_t(bytes) + 64, 0);
      a = buf.data() + align64_offset(buf.data());
      a_bytes = bytes;
    }
    return a;
  }
};

// Stores the C tile of row tile r, column tile j to c through st(dst, stride) (the tile
// intrinsics take the register number as literal text): whole when all 16 rows are valid,
// else through ctmp.
template <typename Store>
inline void store_c(int32_t* c, int r, int j, int mr, Scratch& s, Store st) {
  int32_t* dst = c + int64_t(r * kRows) * kPanel + 16 * j;
  const int valid = mr - r * kRows;
  if (valid >= kRows) {
    st(dst, kPanel * 4);
    return;
  }
  st(s.ctmp, 64);
  for (int i = 0; i < valid; ++i) std::memcpy(dst + int64_t(i) * kPanel, s.ctmp + 16 * i, 64);
}

// Column tiles j0 (and j0 + 1 when NC = 2) of NR row tiles, accumulated over all runs,
// stored to c (the int32 form) or whole to cbuf (the fused form).
template <int NR, int NC>
void tile_pass(const Run* runs, int nruns, int64_t bs, int j0, int32_t* c, int mr, Scratch& s,
               const GemmOut* fo) {
  _tile_zero(0);
  if (NC > 1) _tile_zero(1);
  if (NR > 1) _tile_zero(2);
  if (NR > 1 && NC > 1) _tile_zero(3);
  for (int r = 0; r < nruns; ++r) {
    const uint8_t* a = runs[r].a;
    const int8_t* b = runs[r].b + 64 * int64_t(j0);
    const int64_t as = runs[r].as;
    for (int j = 0; j < runs[r].nblk; ++j, a += 64, b += 16 * bs) {
      _tile_loadd(4, a, as);
      _tile_loadd(6, b, bs);
      _tile_dpbusd(0, 4, 6);
      if (NC > 1) {
        _tile_loadd(7, b + 64, bs);
        _tile_dpbusd(1, 4, 7);
      }
      if (NR > 1) {
        _tile_loadd(5, a + kRows * as, as);
        _tile_dpbusd(2, 5, 6);
        if (NC > 1) _tile_dpbusd(3, 5, 7);
      }
    }
  }
  if (fo) {
    int32_t* cb = s.cbuf + 16 * j0;
    constexpr int64_t st = kPanel * 4;
    _tile_stored(0, cb, st);
    if (NC > 1) _tile_stored(1, cb + 16, st);
    if (NR > 1) _tile_stored(2, cb + kRows * kPanel, st);
    if (NR > 1 && NC > 1) _tile_stored(3, cb + kRows * kPanel + 16, st);
    return;
  }
  c += 16 * j0;
  store_c(c, 0, 0, mr, s, [](void* d, int64_t st) { _tile_stored(0, d, st); });
  if (NC > 1) store_c(c, 0, 1, mr, s, [](void* d, int64_t st) { _tile_stored(1, d, st); });
  if (NR > 1) store_c(c, 1, 0, mr, s, [](void* d, int64_t st) { _tile_stored(2, d, st); });
  if (NR > 1 && NC > 1)
    store_c(c, 1, 1, mr, s, [](void* d, int64_t st) { _tile_stored(3, d, st); });
}

// All column tiles of NR row tiles; the fused form then requantizes the call's rows from
// cbuf in one go, whole panel rows (columns past wp hold stale sums that are never stored).
template <int NR>
void passes(const Run* runs, int nruns, int wp, int32_t* c, int mr, Scratch& s,
            const GemmOut* fo) {
  const int64_t bs = 4 * int64_t(wp);
  int j = 0;
  for (; j + 2 <= wp / 16; j += 2) tile_pass<NR, 2>(runs, nruns, bs, j, c, mr, s, fo);
  if (j < wp / 16) tile_pass<NR, 1>(runs, nruns, bs, j, c, mr, s, fo);
  if (fo) avx512_fused_rows(s.cbuf, kPanel, std::min(mr, NR * kRows), *fo);
}

// The int32 form (c) or, with fo, the fused form (requantized into fo's output).
void gemm_any(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
              int kc4, const int8_t* b, int32_t* c, const GemmOut* fo) {
  static thread_local Scratch s;
  configure();
  // The taps concatenate along K: B is [ntaps * kc4][wp][4], A row i is the taps' runs.
  const int k4 = ntaps * kc4, nfull = k4 / 16, rem = k4 % 16;
  const int nr = mr > kRows ? 2 : 1;
  const int64_t bs = 4 * int64_t(wp);
  // A straight from the rows when they are equally spaced, fill whole row tiles and no
  // block straddles two taps; else the rows are copied (im2col) into scratch.
  bool direct = mr == nr * kRows && (ntaps == 1 || kc4 % 16 == 0);
  const int64_t as = direct ? a[1] - a[0] : 0;
  if (direct) {
    direct = as > 0;
    for (int i = 2; i < mr && direct; ++i) direct = a[i] - a[0] == i * as;
  }
  std::vector<Run>& runs = s.runs;
  runs.clear();
  const uint8_t* atail = nullptr;
  int64_t atail_s = 64;
  if (direct) {
    for (int t = 0; t < ntaps; ++t)
      runs.push_back({a[0] + tap_off[t], as, b + int64_t(t) * kc4 * bs,
                      ntaps == 1 ? nfull : kc4 / 16});
    if (rem) {
      // (one tap) the rows' last rem * 4 bytes, zero-padded: nothing read past a row
      const __mmask64 km = first_bytes(4 * rem);
      for (int i = 0; i < mr; ++i)
        _mm512_store_si512(s.atail + 64 * i,
                           _mm512_maskz_loadu_epi8(km, a[i] + tap_off[0] + int64_t(nfull) * 64));
      atail = s.atail;
    }
  } else {
    // Copied rows: kp bytes each (K rounded up to whole blocks, zeros past K). Rows mr..31
    // of the buffer may hold stale bytes; they only reach C rows that are never stored.
    const int64_t kp = int64_t(nfull + (rem ? 1 : 0)) * 64;
    uint8_t* buf = s.rows(kp * kMr);
    pack_rows(mr, a, tap_off, ntaps, kc4, kp, buf);
    runs.push_back({buf, kp, b, nfull});
    atail = buf + int64_t(nfull) * 64;
    atail_s = kp;
  }
  if (rem) {
    // the last block of B: its rem rows of the panel, then zeros
    std::memcpy(s.btail, b + int64_t(nfull) * 16 * bs, size_t(rem * bs));
    std::memset(s.btail + rem * bs, 0, size_t((16 - rem) * bs));
    runs.push_back({atail, atail_s, s.btail, 1});
  }
  const int nruns = int(runs.size());
  if (nr == 2)
    passes<2>(runs.data(), nruns, wp, c, mr, s, fo);
  else
    passes<1>(runs.data(), nruns, wp, c, mr, s, fo);
}

void gemm(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
          const int8_t* b, int32_t* c) {
  gemm_any(mr, wp, a, tap_off, ntaps, kc4, b, c, nullptr);
}

// GemmFusedFn: the C tiles go through a small scratch straight into the uint8 output.
void gemm_fused(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
                int kc4, const int8_t* b, const GemmOut& o) {
  gemm_any(mr, wp, a, tap_off, ntaps, kc4, b, nullptr, &o);
}

}  // namespace

const IsaTable kAmxTable = {"amx",           kMr,         kMr,          gemm,
                            avx512_epilogue, avx512_dw,   avx512_dw_row, gemm_fused,
                            avx512_add,      avx512_maxpool, avx512_quantize, avx512_dw_quad,
                            pack_rows,       &kAvx512VnniTable};

// Peak loop: four independent C tiles fed from two A and two B tiles (all ones); returns
// the operations performed.
double peak_amx(int64_t iters) {
  configure();
  static const std::vector<uint8_t> src(kRows * 64, 1);
  _tile_loadd(4, src.data(), 64);
  _tile_loadd(5, src.data(), 64);
  _tile_loadd(6, src.data(), 64);
  _tile_loadd(7, src.data(), 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  return double(iters) * 4 * kRows * 16 * 64 * 2;
}

}  // namespace lowp
