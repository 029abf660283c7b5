// Dispatch layer: cpuid/xgetbv feature detection and selection of the microkernel table.
#include "dispatch.h"

#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <stdexcept>

namespace lowp {
namespace {

struct Features {
  bool avx2 = false, fma = false, avx512 = false, avx512vnni = false, avxvnni = false;
  bool amx = false;
};

// Linux hands out the AMX tile data state (XFEATURE_XTILEDATA, 18) per process on request
// (ARCH_REQ_XCOMP_PERM); without it the first tile instruction faults.
bool request_amx() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
  return false;
#endif
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  if (!osxsave || !avx) return f;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool os_avx = (lo & 0x6) == 0x6, os_avx512 = (lo & 0xe6) == 0xe6;
  if (!os_avx || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ((b >> 5) & 1) && f.fma;
  const bool avx512f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  f.avx512 = os_avx512 && f.avx2 && avx512f && dq && bw && vl;
  f.avx512vnni = f.avx512 && ((c >> 11) & 1);
  // AMX-TILE (EDX bit 24) and AMX-INT8 (bit 25), with the OS managing XTILECFG and
  // XTILEDATA (XCR0 bits 17 and 18); the permission is asked for last, only when usable.
  const bool amx_cpu = ((d >> 24) & 1) && ((d >> 25) & 1);
  const bool os_amx = ((lo >> 17) & 3) == 3;
  f.amx = f.avx512vnni && amx_cpu && os_amx && request_amx();
  __cpuid_count(7, 1, a, b, c, d);
  f.avxvnni = f.avx2 && ((a >> 4) & 1);
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

struct Entry {
  const IsaTable* table;
  bool (*supported)();
};

const Entry kEntries[] = {
    {&kScalarTable, [] { return true; }},
    {&kAvx2Table, [] { return features().avx2; }},
    {&kAvxVnniTable, [] { return features().avxvnni; }},
    {&kAvxVnniEvexTable, [] { return features().avx512vnni; }},
    {&kAvx512VnniTable, [] { return features().avx512vnni; }},
    {&kAmxTable, [] { return features().amx; }},
};

const IsaTable* best() {
  for (const char* name : {"amx", "avx512vnni", "avxvnni", "avx2"})
    for (const Entry& e : kEntries)
      if (name == std::string(e.table->name) && e.supported()) return e.table;
  return &kScalarTable;
}

std::atomic<const IsaTable*> g_active{nullptr};
std::atomic<int> g_short_gemm_bytes{128};
std::atomic<int> g_short_gemm_rows{8};

}  // namespace

std::vector<std::string> available_paths() {
  std::vector<std::string> out;
  for (const Entry& e : kEntries)
    if (e.supported()) out.emplace_back(e.table->name);
  return out;
}

const IsaTable* table_for(const std::string& name) {
  std::string known;
  for (const Entry& e : kEntries) {
    if (name == e.table->name) {
      if (!e.supported())
        throw std::invalid_argument("instruction-set path '" + name +
                                    "' is not supported by this CPU");
      return e.table;
    }
    known += std::string(known.empty() ? "" : ", ") + e.table->name;
  }
  throw std::invalid_argument("unknown instruction-set path '" + name + "' (known: " + known + ")");
}

const IsaTable* active_table() {
  const IsaTable* t = g_active.load();
  if (!t) {
    t = best();
    g_active.store(t);
  }
  return t;
}

void set_active_path(const std::string& name) { g_active.store(table_for(name)); }

int short_gemm_bytes() { return g_short_gemm_bytes.load(); }
void set_short_gemm_bytes(int bytes) { g_short_gemm_bytes.store(bytes < 0 ? 0 : bytes); }
int short_gemm_rows() { return g_short_gemm_rows.load(); }
void set_short_gemm_rows(int rows) { g_short_gemm_rows.store(rows < 0 ? 0 : rows); }

}  // namespace lowp
