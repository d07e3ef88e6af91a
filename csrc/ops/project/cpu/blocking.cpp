// Block sizes from cache sizes (the model is in blocking.h).
#include "ops/project/cpu/blocking.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {

namespace {
int64_t sysconf_or(int name, int64_t fallback, bool& from_os) {
  const long v = sysconf(name);
  if (v > 0) return v;
  from_os = false;
  return fallback;
}
int64_t round_down(int64_t v, int64_t q) { return std::max<int64_t>(q, v / q * q); }
int64_t round_up(int64_t v, int64_t q) { return (v + q - 1) / q * q; }
}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = [] {
    CacheSizes s{0, 0, 0, true};
    // Defaults: the smallest caches of the x86 cores this project runs on (a Zen 3 core), so that an
    // unknown CPU is blocked too small (a few % slower) rather than too large (thrashing).
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    s.l1d = sysconf_or(_SC_LEVEL1_DCACHE_SIZE, 32 << 10, s.from_os);
    s.l2 = sysconf_or(_SC_LEVEL2_CACHE_SIZE, 512 << 10, s.from_os);
    s.l3 = sysconf_or(_SC_LEVEL3_CACHE_SIZE, 8 << 20, s.from_os);
#else
    s = CacheSizes{32 << 10, 512 << 10, 8 << 20, false};
#endif
    // A VM may report nonsense; keep every size in a range where the model below makes sense.
    s.l1d = std::clamp<int64_t>(s.l1d, 16 << 10, 128 << 10);
    s.l2 = std::clamp<int64_t>(s.l2, 256 << 10, 8 << 20);
    return s;
  }();
  return sizes;
}

int64_t kc_max(CpuPath path) {
  const int64_t cols = path.panel->cols;  // reals per register pass
  if (const char* env = std::getenv("MANIFPT_CPU_KC"); env && std::atoll(env) > 0) return std::atoll(env);
  return round_down(cache_sizes().l1d / 2 / (cols * 4), 16);
}

Blocking choose_blocking(int64_t M, int64_t N, int64_t D, int64_t tile_m, int64_t tile_n, int threads, CpuPath path,
                         bool float_panels) {
  const char* pf = std::getenv("MANIFPT_CPU_PREFETCH");
  Blocking b{0, 0, std::max<int64_t>(D, 1), 1, !(pf && std::string_view(pf) == "0")};
  const bool panels = float_panels && path.panels();
  if (panels) {
    const CacheSizes& cs = cache_sizes();
    b.mr = path.panel->mr;
    const int64_t kc = kc_max(path);
    // Split D into equal K-blocks (no short last block), each a multiple of 8 floats.
    const int64_t nk = (D + kc - 1) / kc;
    b.kc = std::min(D, round_up((D + nk - 1) / nk, 8));
    const int64_t kc_eff = std::min(b.kc, D);
    b.mc = std::clamp<int64_t>(round_down(cs.l2 / 4 / (kc_eff * 4), b.mr), 8 * b.mr, 256 / b.mr * b.mr);
    b.nc = std::clamp<int64_t>(round_down(cs.l2 / 2 / (b.mc * 4), kPanel), 256, 2048);
  } else {
    // Row-major paths (BLAS, portable, float64): the tiles the BLAS path was measured best with.
    b.mc = D <= 256 ? 128 : 256;
    b.nc = D <= 256 ? 512 : 1024;
  }
  if (tile_m > 0) {
    b.mc = round_up(tile_m, b.mr);
  } else {
    // Few fakes: smaller blocks (multiples of 8 rows) so every thread gets one.
    const int64_t q = panels ? b.mr : 8;
    b.mc = std::min(b.mc, std::max<int64_t>(q, round_up((M + threads - 1) / threads, q)));
  }
  if (tile_n > 0) b.nc = tile_n;
  b.mc = std::max<int64_t>(1, std::min(b.mc, std::max<int64_t>(M, 1)));
  if (panels && b.mc < M) b.mc = round_up(b.mc, b.mr);  // blocks start at a micro-panel
  b.nc = std::max<int64_t>(1, std::min(b.nc, N));
  return b;
}

}  // namespace manifpt::detail
