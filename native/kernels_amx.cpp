// Microkernels, AMX path: the GEMM on AMX-INT8 tiles (tdpbusd, uint8 A x int8 B into int32);
// every other member is the avx512vnni path's. Compiled with its own flags; nothing here
// runs unless dispatch found AMX usable (CPU, OS state and the Linux permission request).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"

namespace lowp {
#ifdef LOWP_AMX_PHASES
namespace {
int g_phase_skip = 0;
}  // namespace
void set_amx_phase_skip(int mask) { g_phase_skip = mask; }
#endif
namespace {

#ifdef LOWP_AMX_PHASES
// The timing build's switches (cmake -DLOWP_AMX_PHASES=ON, bench/amx_phases.py): each
// leaves one phase of a real call out so that its share of the time can be measured (the
// outputs are then wrong). A normal build compiles none of this, so its code is unchanged.
enum PhaseSkip : int {
  kSkipPack = 1,        // pack_rows returns at once (the previous chunk's rows are reused)
  kSkipTiles = 2,       // no tile passes (the epilogue requantizes stale sums)
  kSkipStores = 4,      // the passes' C tiles are not stored
  kSkipEpilogue = 8,    // no requantization
  kScratchOutput = 16,  // the epilogue writes its rows to a per-thread 2 KB scratch
};
inline bool skipped(int phase) { return (g_phase_skip & phase) != 0; }
#endif

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
// release the tiles) between our calls, so the check compares the live configuration; the
// driver runs it once per task (IsaTable::gemm_prepare: no other code runs on the thread
// between the calls of one task), not once per call (storing the live configuration costs
// 2-4% of a large GEMM when done for every 32 x 64 call).
void configure() {
  static const TileConfig want = make_config();
  TileConfig have;
  _tile_storeconfig(&have);
  if (std::memcmp(&have, &want, sizeof(TileConfig)) != 0) _tile_loadconfig(&want);
}

// The amx path's weight layout (IsaTable::pack_panel): a panel of wp columns is made of
// column pairs (32 columns, 2 tiles; the last pair of a 16- or 48-wide panel has 1 tile),
// pair q at q * nkb * 2 KB holds, for every K block j (16 k4 groups, 64 bytes of K), its
// tiles one after another: tile t of block j at + j * nt * 1 KB + t * 1 KB, each tile
// [16 k4][16 columns][4] bytes (row stride 64). K is zero-padded to whole blocks. A pass
// (two column tiles over all of K) thus reads one contiguous run of 2 KB blocks.
int64_t panel_bytes(int k4, int wp) { return int64_t((k4 + 15) / 16) * 1024 * (wp / 16); }

void pack_panel(const int8_t* src, int k4, int wp, int8_t* dst) {
  const int nkb = (k4 + 15) / 16;
  std::memset(dst, 0, size_t(panel_bytes(k4, wp)));
  for (int r = 0; r < k4; ++r)
    for (int c = 0; c < wp; c += 16) {
      const int q = c / 32, t = (c % 32) / 16, nt = std::min(2, wp / 16 - 2 * q);
      int8_t* d = dst + int64_t(q) * nkb * 2048 + int64_t(r / 16) * nt * 1024 + t * 1024 +
                  (r % 16) * 64;
      std::memcpy(d, src + (int64_t(r) * wp + c) * 4, 64);
    }
}

// A run of K blocks: block j of row tile 0 at a + j * astep (rows as bytes apart), of row
// tile 1 at a1 + j * astep1 (rows as1 apart); the run's blocks are the B blocks jb, jb + 1, ...
struct Run {
  const uint8_t* a;
  int64_t as, astep;
  const uint8_t* a1;
  int64_t as1, astep1;
  int jb, nblk;
};

// The first n (<= 64) of 64 bytes.
inline __mmask64 first_bytes(int64_t n) { return n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1; }

// One piece of a packed row: the bytes that `mask` selects of 64 read from row + src (lanes
// before a tap run read from before it, masked off), merged into the K block being built;
// `store` ends the block.
struct RowPiece {
  int64_t src;
  __mmask64 mask;
  bool store;
};

// PackRowsFn, the amx path's own layout (gemm_fused_packed): groups of kMr rows, group g at
// dst + g * kMr * kp holds its K blocks one after another, block j = [kMr rows][64 bytes]
// (two contiguous 1 KB row tiles); the taps' runs one after another, zeros up to kp and in
// the rows past n of the last group.
void pack_rows(int64_t n, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               int64_t kp, uint8_t* dst) {
#ifdef LOWP_AMX_PHASES
  if (skipped(kSkipPack)) return;
#endif
  const int64_t krow = 4 * int64_t(kc4), nkb = kp / 64;
  // The same pieces for every row, worked out once: a row's K bytes in 64-byte blocks, the
  // taps one after another (a block may hold several taps' runs, or straddle two taps),
  // zeros past the last tap. A run shorter than its block is merged into the register by a
  // masked load, so no block goes through memory (a store and a wider reload would stall).
  static thread_local std::vector<RowPiece> pieces;
  pieces.clear();
  {
    int t = 0;
    int64_t off = 0;  // bytes of tap t already taken
    for (int64_t j = 0; j < nkb; ++j) {
      int64_t fill = 0;
      while (fill < 64 && t < ntaps) {
        const int64_t take = std::min<int64_t>(64 - fill, krow - off);
        pieces.push_back({tap_off[t] + off - fill, first_bytes(take) << fill, false});
        fill += take;
        off += take;
        if (off == krow) {
          ++t;
          off = 0;
        }
      }
      if (fill == 0) pieces.push_back({0, 0, false});
      pieces.back().store = true;
    }
  }
  const RowPiece* const pb = pieces.data();
  const RowPiece* const pe = pb + pieces.size();
  const int64_t ngroups = (n + kMr - 1) / kMr;
  for (int64_t g = 0; g < ngroups; ++g) {
    uint8_t* gd = dst + g * kMr * kp;
    for (int i = 0; i < kMr; ++i) {
      const int64_t ri = g * kMr + i;
      uint8_t* d = gd + 64 * i;
      if (ri >= n) {
        for (int64_t j = 0; j < nkb; ++j) _mm512_store_si512(d + j * kMr * 64, _mm512_setzero_si512());
        continue;
      }
      const uint8_t* const row = a[ri];
      __m512i v = _mm512_setzero_si512();
      for (const RowPiece* p = pb; p != pe; ++p) {
        v = p->mask == ~__mmask64(0) ? _mm512_loadu_si512(row + p->src)
                                     : _mm512_mask_loadu_epi8(v, p->mask, row + p->src);
        if (p->store) {
          _mm512_store_si512(d, v);
          d += kMr * 64;
          v = _mm512_setzero_si512();
        }
      }
    }
  }
}

// Per-thread scratch: the zero-padded tail rows of A for the last K block (rows read in
// place), a C tile for rows past mr, the call's C tiles (fused form, which the epilogue
// reads), and the order of the passes (see passes).
struct Scratch {
  alignas(64) uint8_t atail[kMr * 64];
  alignas(64) int32_t ctmp[kRows * 16];
  alignas(64) int32_t cbuf[kMr * kPanel];
  std::vector<Run> runs;
  std::vector<uint8_t> tiles;  // row tiles copied alone (gemm_any), 2 x K blocks of 1 KB
  bool rev = false, swap = false;
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

// One step: K block j of run r against B block bb (column tiles at bb, bb + 1 KB). With SA
// (rows packed by the driver, read once per pass from L2) the row tiles are loaded with
// tileloaddt1, the hint that they need not stay in the nearer caches, which the panel's B
// blocks (read again by the next call) keep: 0-8% faster on the GEMMs of the table below.
template <int NR, int NC, bool SA>
inline void step(const uint8_t* a, int64_t as, const uint8_t* a1, int64_t as1,
                 const int8_t* bb) {
  if constexpr (SA)
    _tile_stream_loadd(4, a, as);
  else
    _tile_loadd(4, a, as);
  _tile_loadd(6, bb, 64);
  _tile_dpbusd(0, 4, 6);
  if (NC > 1) {
    _tile_loadd(7, bb + 1024, 64);
    _tile_dpbusd(1, 4, 7);
  }
  if (NR > 1) {
    if constexpr (SA)
      _tile_stream_loadd(5, a1, as1);
    else
      _tile_loadd(5, a1, as1);
    _tile_dpbusd(2, 5, 6);
    if (NC > 1) _tile_dpbusd(3, 5, 7);
  }
}

// Column tiles j0 (and j0 + 1 when NC = 2) of NR row tiles, accumulated over all runs (in
// reverse order when rev: the sums are exact either way), B from the pair's blocks at bq
// (bstep bytes apart), stored to c (the int32 form) or whole to cbuf (the fused form).
template <int NR, int NC, bool SA>
void tile_pass(const Run* runs, int nruns, const int8_t* bq, int64_t bstep, bool rev, int j0,
               int32_t* c, int mr, Scratch& s, const GemmOut* fo) {
  _tile_zero(0);
  if (NC > 1) _tile_zero(1);
  if (NR > 1) _tile_zero(2);
  if (NR > 1 && NC > 1) _tile_zero(3);
  if (!rev) {
    for (int r = 0; r < nruns; ++r) {
      const Run& u = runs[r];
      const uint8_t* a = u.a;
      const uint8_t* a1 = u.a1;
      const int8_t* b = bq + u.jb * bstep;
      for (int j = 0; j < u.nblk; ++j, a += u.astep, a1 += u.astep1, b += bstep)
        step<NR, NC, SA>(a, u.as, a1, u.as1, b);
    }
  } else {
    for (int r = nruns - 1; r >= 0; --r) {
      const Run& u = runs[r];
      const uint8_t* a = u.a + (u.nblk - 1) * u.astep;
      const uint8_t* a1 = u.a1 + (u.nblk - 1) * u.astep1;
      const int8_t* b = bq + (u.jb + u.nblk - 1) * bstep;
      for (int j = u.nblk - 1; j >= 0; --j, a -= u.astep, a1 -= u.astep1, b -= bstep)
        step<NR, NC, SA>(a, u.as, a1, u.as1, b);
    }
  }
#ifdef LOWP_AMX_PHASES
  if (fo && skipped(kSkipStores)) return;
#endif
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

// All column pairs of NR row tiles; the fused form then requantizes the call's rows from
// cbuf in one go, whole panel rows (columns past wp hold stale sums that are never stored).
// Order: consecutive passes run K in opposite directions, and consecutive calls take the
// pairs in opposite orders, so that each pass starts on the A rows (same call) or the B
// pair (previous call, which the driver runs on the same panel) that the pass before it
// ended on, still in L1.
template <int NR, bool SA>
void passes(const Run* runs, int nruns, int wp, int nkb, const int8_t* b, int32_t* c, int mr,
            Scratch& s, const GemmOut* fo) {
  const int nt = wp / 16, np = (nt + 1) / 2;
#ifdef LOWP_AMX_PHASES
  const int np_run = skipped(kSkipTiles) ? 0 : np;
#else
  const int np_run = np;
#endif
  for (int i = 0; i < np_run; ++i) {
    const int q = s.swap ? np - 1 - i : i;
    const int8_t* bq = b + int64_t(q) * nkb * 2048;
    if (2 * q + 2 <= nt)
      tile_pass<NR, 2, SA>(runs, nruns, bq, 2048, s.rev, 2 * q, c, mr, s, fo);
    else
      tile_pass<NR, 1, SA>(runs, nruns, bq, 1024, s.rev, 2 * q, c, mr, s, fo);
    s.rev = !s.rev;
  }
  s.swap = !s.swap;
#ifdef LOWP_AMX_PHASES
  if (fo && (skipped(kSkipEpilogue) || skipped(kScratchOutput))) {
    alignas(64) static thread_local uint8_t scratch[kMr * 64];
    GemmOut so = *fo;
    so.out = scratch;
    so.ldo = 64;
    if (!skipped(kSkipEpilogue)) avx512_fused_rows(s.cbuf, kPanel, std::min(mr, NR * kRows), so);
    return;
  }
#endif
  if (fo) avx512_fused_rows(s.cbuf, kPanel, std::min(mr, NR * kRows), *fo);
}

// The int32 form (c) or, with fo, the fused form (requantized into fo's output); b in the
// amx layout (pack_panel). A rows read in place.
void gemm_any(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
              int kc4, const int8_t* b, int32_t* c, const GemmOut* fo) {
  static thread_local Scratch s;
  // The taps concatenate along K: A row i is the taps' runs.
  const int k4 = ntaps * kc4, nfull = k4 / 16, rem = k4 % 16, nkb = (k4 + 15) / 16;
  const int nr = mr > kRows ? 2 : 1;
  // A straight from the rows when they are equally spaced, fill whole row tiles and no
  // block straddles two taps; else the rows are copied into the amx layout in scratch.
  bool direct = mr == nr * kRows && (ntaps == 1 || kc4 % 16 == 0);
  const int64_t as = direct ? a[1] - a[0] : 0;
  if (direct) {
    direct = as > 0;
    for (int i = 2; i < mr && direct; ++i) direct = a[i] - a[0] == i * as;
  }
  std::vector<Run>& runs = s.runs;
  runs.clear();
  // Whole 64-byte blocks per tap, two row tiles, not all 32 rows equally spaced: each row
  // tile whose 16 rows are is read in place, the other (it holds the end of an output row,
  // or rows past mr) is copied alone, so a group that crosses an output row copies at most
  // half of its rows (docs/native.md).
  const int bpt = ntaps == 1 ? nfull : kc4 / 16;
  if (!direct && nr == 2 && rem == 0 && (ntaps == 1 || kc4 % 16 == 0)) {
    const uint8_t* ta[2];
    int64_t ts[2], tstep[2];
    const int64_t tile_bytes = int64_t(nkb) * kRows * 64;
    if (int64_t(s.tiles.size()) < 2 * tile_bytes + 64) s.tiles.resize(size_t(2 * tile_bytes + 64));
    uint8_t* const tiles = s.tiles.data() + align64_offset(s.tiles.data());
    for (int r = 0; r < 2; ++r) {
      const uint8_t* const* ar = a + r * kRows;
      const int n = std::min(kRows, mr - r * kRows);
      bool in_place = n == kRows && ar[1] > ar[0];
      const int64_t st = in_place ? ar[1] - ar[0] : 0;
      for (int i = 2; i < n && in_place; ++i) in_place = ar[i] - ar[0] == i * st;
      if (in_place) {
        ta[r] = ar[0];
        ts[r] = st;
        tstep[r] = 64;
        continue;
      }
      // block (t, j) of this row tile at tile + (t * bpt + j) KB; zeros in rows past n
      uint8_t* const tile = tiles + r * tile_bytes;
      for (int i = 0; i < kRows; ++i)
        for (int t = 0; t < ntaps; ++t)
          for (int j = 0; j < bpt; ++j)
            _mm512_store_si512(tile + (int64_t(t * bpt + j) * kRows + i) * 64,
                               i < n ? _mm512_loadu_si512(ar[i] + tap_off[t] + j * 64)
                                     : _mm512_setzero_si512());
      ta[r] = tile;
      ts[r] = -1;  // copied: rows 64 bytes apart, tap t's blocks from (t * bpt) KB
      tstep[r] = int64_t(kRows) * 64;
    }
    for (int t = 0; t < ntaps; ++t) {
      const uint8_t* p[2];
      int64_t st[2];
      for (int r = 0; r < 2; ++r) {
        const bool copied = ts[r] < 0;
        p[r] = copied ? ta[r] + int64_t(t) * bpt * kRows * 64 : ta[r] + tap_off[t];
        st[r] = copied ? 64 : ts[r];
      }
      runs.push_back({p[0], st[0], tstep[0], p[1], st[1], tstep[1], t * bpt, bpt});
    }
  } else if (direct) {
    for (int t = 0; t < ntaps; ++t)
      runs.push_back({a[0] + tap_off[t], as, 64, a[0] + tap_off[t] + kRows * as, as, 64,
                      t * bpt, bpt});
    if (rem) {
      // (one tap) the rows' last rem * 4 bytes, zero-padded: nothing read past a row
      const __mmask64 km = first_bytes(4 * rem);
      for (int i = 0; i < mr; ++i)
        _mm512_store_si512(s.atail + 64 * i,
                           _mm512_maskz_loadu_epi8(km, a[i] + tap_off[0] + int64_t(nfull) * 64));
      runs.push_back({s.atail, 64, 64, s.atail + kRows * 64, 64, 64, nfull, 1});
    }
  } else {
    static thread_local std::vector<uint8_t> buf;
    const int64_t kp = int64_t(nkb) * 64, need = kp * kMr + 64;
    if (int64_t(buf.size()) < need) buf.assign(size_t(need), 0);
    uint8_t* rows = buf.data() + align64_offset(buf.data());
    pack_rows(mr, a, tap_off, ntaps, kc4, kp, rows);
    runs.push_back({rows, 64, kMr * 64, rows + kRows * 64, 64, kMr * 64, 0, nkb});
  }
  const int nruns = int(runs.size());
  if (nr == 2)
    passes<2, false>(runs.data(), nruns, wp, nkb, b, c, mr, s, fo);
  else
    passes<1, false>(runs.data(), nruns, wp, nkb, b, c, mr, s, fo);
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

// gemm_fused_packed: a[0] is a group written by pack_rows (one tap of kc4 groups).
void gemm_fused_packed(int mr, int wp, const uint8_t* const* a, const int64_t*, int, int kc4,
                       const int8_t* b, const GemmOut& o) {
  static thread_local Scratch s;
  const int nkb = (kc4 + 15) / 16;
  const Run run{a[0], 64, kMr * 64, a[0] + kRows * 64, 64, kMr * 64, 0, nkb};
  if (mr > kRows)
    passes<2, true>(&run, 1, wp, nkb, b, nullptr, mr, s, &o);
  else
    passes<1, true>(&run, 1, wp, nkb, b, nullptr, mr, s, &o);
}

}  // namespace

const IsaTable kAmxTable = {"amx",           kMr,         kMr,          gemm,
                            avx512_epilogue, avx512_dw,   avx512_dw_row, gemm_fused,
                            avx512_add,      avx512_maxpool, avx512_quantize, avx512_dw_quad,
                            pack_rows,       &kAvx512VnniTable, pack_panel,
                            panel_bytes,     gemm_fused_packed, configure};

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
