#pragma once
// Register-blocked cross term on packed operands (layouts in kernels.h), in the loop order of BLIS
// and OpenBLAS: for each K-block, for each panel of reals (its kc x kPanel slice stays in L1), for
// each MR-row micro-panel of fakes (streamed from L2, where the block's kc x mb slice stays).
//
// Included by gemm_avx512.cpp and gemm_avx2.cpp, each compiled with its own -m flags and its own
// vector traits V (W floats per register). Everything lives in an anonymous namespace so the two
// instantiations never meet at link time.
//
// Both operands are read contiguously: the fakes were packed into k-major micro-panels once, before
// the search, so no stream here has a power-of-two stride (reading MR fakes' rows in place at stride
// D aliased into the same L1 sets when D * 4 is a multiple of 4 KB: D = 3072 ran far slower than 3000).
#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {
namespace {

// MR fakes (micro-panel a, layout [k][MR]) x NV * W reals of one panel slice (bp, stride kPanel).
template <typename V, int MR, int NV>
inline void micro_kernel(const float* a, const float* bp, int64_t kc, float* c, int64_t ldc, bool accumulate) {
  typename V::vec acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? V::load(c + r * ldc + v * V::W) : V::zero();
  for (int64_t k = 0; k < kc; ++k) {
    typename V::vec b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = V::load(bp + k * kPanel + v * V::W);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const typename V::vec av = V::set1(a[k * MR + r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::W, acc[r][v]);
}

// The last micro-panel of all fakes has rows < MR and is packed [k][rows]: one instantiation per count.
template <typename V, int NV, int... R>
inline void micro_tail(int rows, const float* a, const float* bp, int64_t kc, float* c, int64_t ldc, bool acc,
                       std::integer_sequence<int, R...>) {
  ((rows == R + 1 ? micro_kernel<V, R + 1, NV>(a, bp, kc, c, ldc, acc) : void()), ...);
}

template <typename V, int MR, int NV>
void cross_gemm_panels(const float* ap, int64_t mb, int64_t D, int64_t kc_max, const float* panels, int64_t nb, float* c,
                       int64_t ldc) {
  constexpr int64_t cols = int64_t(NV) * V::W;
  static_assert(kPanel % cols == 0, "the register block must tile a panel");
  const int64_t np = (nb + kPanel - 1) / kPanel;
  for (int64_t k0 = 0; k0 < D; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, D - k0);
    for (int64_t p = 0; p < np; ++p) {
      for (int64_t c0 = 0; c0 < kPanel; c0 += cols) {
        const float* bp = panels + p * D * kPanel + k0 * kPanel + c0;
        float* cp = c + p * kPanel + c0;
        int64_t i = 0;
        for (; i + MR <= mb; i += MR) micro_kernel<V, MR, NV>(ap + i * D + k0 * MR, bp, kc, cp + i * ldc, ldc, k0 > 0);
        if (i < mb) {
          const int rows = int(mb - i);
          micro_tail<V, NV>(rows, ap + i * D + k0 * rows, bp, kc, cp + i * ldc, ldc, k0 > 0,
                            std::make_integer_sequence<int, MR - 1>{});
        }
      }
    }
  }
}

}  // namespace
}  // namespace manifpt::detail
