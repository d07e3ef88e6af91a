#pragma once
// Tile and cache blocking of the candidate search, from the cache sizes of the CPU it runs on.
//
// The model is the one BLIS and OpenBLAS use (Low et al., "Analytical modeling is enough for
// high-performance BLIS", 2016), applied to our loop nest (candidates.cpp, gemm_panels.h):
//   kc  K-block: one panel slice of reals (kc x cols floats, cols = reals per register pass) takes
//       at most half of L1d, so it stays there across all the fakes' micro-panels of a block, with
//       room left for the micro-panel of fakes streaming through and the C rows;
//   mc  fakes per block: the block's kc x mc slice of packed fakes takes at most a quarter of L2
//       (re-read from L2 for every panel of reals);
//   nc  reals per tile: the block's mc x nc output (scanned right after the GEMM) takes at most half
//       of L2, so the scan reads it from L2.
// Blocking tuned for one CPU's caches ran far below the limit on another (a 32 KB kc x kPanel slice
// filled a Zen 3's whole 32 KB L1), hence run-time sizes, with safe defaults when the OS reports none.
#include <cstdint>

#include "ops/project/cpu/isa.h"

namespace manifpt::detail {

struct CacheSizes {
  int64_t l1d, l2, l3;  // bytes per core (L3: shared), from sysconf, else defaults
  bool from_os;
};
const CacheSizes& cache_sizes();

struct Blocking {
  int64_t mc;  // fakes per block (a multiple of mr on the panel paths)
  int64_t nc;  // reals per tile
  int64_t kc;  // K-block of our GEMMs (ignored by BLAS / portable)
  int mr;      // rows of the fakes' micro-panels (panel paths), else 1
  bool prefetch;  // the panel GEMMs' software prefetches (gemm_panels.h); MANIFPT_CPU_PREFETCH=0 turns them off
};

// The largest K-block of the panel paths (before D is split into equal blocks).
int64_t kc_max(CpuPath path);

// tile_m, tile_n > 0 force the tile sizes (tests, tuning); tile_m is rounded up to a multiple of mr on
// the panel paths, whose blocks start at a micro-panel. MANIFPT_CPU_KC > 0 forces kc and
// MANIFPT_CPU_PREFETCH=0 turns the prefetches off (measurements; both are read on every call).
Blocking choose_blocking(int64_t M, int64_t N, int64_t D, int64_t tile_m, int64_t tile_n, int threads, CpuPath path,
                         bool float_panels);

}  // namespace manifpt::detail
