#pragma once
// Register-blocked cross term on packed operands (layouts in kernels.h), in the loop order of BLIS
// and OpenBLAS: for each K-block, for each sub-panel of reals (its kc x cols slice stays in L1), for
// each MR-row micro-panel of fakes (streamed from L2, where the block's kc x mb slice stays).
//
// Included by gemm_avx512.cpp and gemm_avx2.cpp, each compiled with its own -m flags and its own
// vector traits V (W floats per register). Everything lives in an anonymous namespace so the two
// instantiations never meet at link time.
//
// Both operands are read contiguously: the fakes were packed into k-major micro-panels of K-blocks once,
// before the search, so no stream here has a power-of-two stride (reading MR fakes' rows in place at
// stride D aliased into the same L1 sets when D * 4 is a multiple of 4 KB: D = 3072 ran far slower than
// 3000; micro-panels spanning all of D left the block's K-slices at stride D * MR, the same on L2's sets).
#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {
namespace {

// The lines a micro-kernel prefetches while it runs (the driver's prefetch, below): b_lines lines of the
// next pass's slice of reals from next_b, and the MR rows of the next micro-tile of C at next_c.
struct Prefetches {
  const float* next_b = nullptr;
  int64_t b_lines = 0;
  const float* next_c = nullptr;
};

// MR fakes (micro-panel a, layout [k][MR]) x NV * W reals of one sub-panel slice (bp, [k][NV * W]).
// The prefetches go out a few at a time, one group every kStep steps of k, not in a burst before the
// first FMA: the profile put the driver's time on such a burst of 20-30 prefetches (most likely waiting
// for line-fill buffers), and spreading them measured 1-4% faster (benchmarks/RESULTS.md).
template <typename V, int MR, int NV>
inline void micro_kernel(const float* a, const float* bp, int64_t kc, float* c, int64_t ldc, bool accumulate,
                         const Prefetches& pf) {
  constexpr int64_t kStep = 16, kLine = 64 / sizeof(float), kRowLines = (NV * V::W + kLine - 1) / kLine;
  const int64_t steps = (kc + kStep - 1) / kStep;
  const int64_t b_per = (pf.b_lines + steps - 1) / steps, c_per = (MR + steps - 1) / steps;
  typename V::vec acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? V::load(c + r * ldc + v * V::W) : V::zero();
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t l = s * b_per; l < std::min(pf.b_lines, (s + 1) * b_per); ++l) __builtin_prefetch(pf.next_b + l * kLine);
    if (pf.next_c)
      for (int64_t r = s * c_per; r < std::min<int64_t>(MR, (s + 1) * c_per); ++r)
        for (int64_t l = 0; l < kRowLines; ++l) __builtin_prefetch(pf.next_c + r * ldc + l * kLine, 1, 3);
    for (int64_t k = s * kStep; k < std::min(kc, (s + 1) * kStep); ++k) {
      typename V::vec b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[v] = V::load(bp + k * (NV * V::W) + v * V::W);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const typename V::vec av = V::set1(a[k * MR + r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, b[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::W, acc[r][v]);
}

// The last micro-panel of all fakes (rows < MR): one instantiation per row count.
template <typename V, int NV, int... R>
inline void micro_tail(int rows, const float* a, const float* bp, int64_t kc, float* c, int64_t ldc, bool acc,
                       const Prefetches& pf, std::integer_sequence<int, R...>) {
  ((rows == R + 1 ? micro_kernel<V, R + 1, NV>(a, bp, kc, c, ldc, acc, pf) : void()), ...);
}

// prefetch (Blocking::prefetch, MANIFPT_CPU_PREFETCH): two software prefetches the hardware does not do.
//   The next slice of reals: while the micro-panels of fakes run against one slice, each asks, through
//   its k loop (micro_kernel), for its share of the lines of the slice the next pass reads, so that slice
//   is in L1 when the pass starts instead of coming line by line from L3 behind the first micro-panel's
//   FMAs.
//   The next micro-tile of C: its MR rows sit ldc floats apart, a stride no prefetcher follows, and the
//   C block (mc x nc floats, up to half of L2) shares L2 with the slices of reals streaming through it,
//   so the rows often come from L3 while the next micro-kernel starts by loading them.
// Measured (benchmarks/RESULTS.md): on a Zen 3 (AVX2) the first took the driver from 77-80 to 84-87
// GFLOP/s of a core's 94; on a Zen 4 (AVX-512) it alone gained nothing that held; on an Intel Xeon both
// together gained 8-10% at D >= 2048 with AVX-512 and 1-3% with AVX2, nothing lost at D <= 128; issued
// through the k loop instead of in a burst before each micro-kernel, 1-4% more with AVX-512 at D >= 2048.
template <typename V, int MR, int NV>
void cross_gemm_panels(const float* fakes, int64_t M, int64_t i0, int64_t mb, int64_t D, int64_t kc_max,
                       const float* panels, int64_t nb, float* c, int64_t ldc, bool prefetch) {
  constexpr int64_t cols = int64_t(NV) * V::W, kLine = 64 / sizeof(float);
  static_assert(kPanel % cols == 0, "the register block must tile a panel");
  const int64_t nsub = (nb + kPanel - 1) / kPanel * (kPanel / cols);
  const int64_t nmicro = (mb + MR - 1) / MR;
  for (int64_t k0 = 0; k0 < D; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, D - k0);
    const int64_t lines = kc * cols / kLine, share = (lines + nmicro - 1) / nmicro;
    const float* ap = fakes + k0 * M + i0 * kc;  // this block's slab of the K-block (pack.h)
    for (int64_t q = 0; q < nsub; ++q) {
      const float* bp = panels + q * D * cols + k0 * cols;  // sub-panel q's K-block (its columns: q * cols)
      // The next pass: the next sub-panel's slice, or the first sub-panel's next K-block.
      const float* next = q + 1 < nsub ? bp + D * cols : k0 + kc < D ? panels + (k0 + kc) * cols : nullptr;
      float* cp = c + q * cols;
      for (int64_t i = 0, g = 0; i < mb; i += MR, ++g) {
        Prefetches pf;
        if (prefetch) {
          const int64_t l0 = std::min(lines, g * share), l1 = std::min(lines, (g + 1) * share);
          if (next) pf = {next + l0 * kLine, l1 - l0, nullptr};
          if (i + MR < mb) pf.next_c = cp + (i + MR) * ldc;
        }
        if (i + MR <= mb) {
          micro_kernel<V, MR, NV>(ap + i * kc, bp, kc, cp + i * ldc, ldc, k0 > 0, pf);
        } else {
          // The last micro-panel of all fakes has rows < MR and is packed [k][rows].
          const int rows = int(mb - i);
          micro_tail<V, NV>(rows, ap + i * kc, bp, kc, cp + i * ldc, ldc, k0 > 0, pf,
                            std::make_integer_sequence<int, MR - 1>{});
        }
      }
    }
  }
}

}  // namespace
}  // namespace manifpt::detail
