#pragma once
// Register-blocked cross term c[i * ldc + j] = x_i . y_j for a block of centred fakes (row-major, D
// wide) against a tile of centred reals packed in panels of kPanel (layout [panel][k][kPanel]).
//
// Included by gemm_avx512.cpp and gemm_avx2.cpp, each compiled with its own -m flags and its own
// vector traits V (W floats per register). Everything lives in an anonymous namespace so the two
// instantiations never meet at link time.
//
// Register block: MR fakes x NV * W reals, i.e. MR * NV accumulators. Per k: NV panel
// loads and MR broadcasts straight from the fakes' rows (MR sequential streams that the prefetcher
// follows). K is blocked by kKC so a panel slice (kKC x kPanel floats, 32 KB) stays in L1 across all
// the rows of the block.
#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/project/project.h"

namespace manifpt::detail {
namespace {

constexpr int64_t kKC = 256;

// MR fakes x NV * W reals of one panel, starting at the panel's column 0 (bp, c already offset).
template <typename V, int MR, int NV>
inline void micro_kernel(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, bool accumulate) {
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
      const typename V::vec av = V::set1(a[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::W, acc[r][v]);
}

template <typename V, int NV, int... R>
inline void micro_tail(int rows, const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, bool acc,
                       std::integer_sequence<int, R...>) {
  ((rows == R + 1 ? micro_kernel<V, R + 1, NV>(a, lda, bp, kc, c, ldc, acc) : void()), ...);
}

// MR x (NV * W) register block; a panel of kPanel columns takes kPanel / (NV * W) passes. The fakes are
// read in place (MR row streams): packing their K-slice k-major first was measured 10-20% slower here
// (the scalar transpose costs more than the broadcasts it saves).
template <typename V, int MR, int NV>
void cross_gemm_panels(const float* x, int64_t mb, int64_t D, const float* panels, int64_t nb, float* c, int64_t ldc) {
  constexpr int64_t cols = int64_t(NV) * V::W;
  static_assert(kPanel % cols == 0, "the register block must tile a panel");
  const int64_t np = (nb + kPanel - 1) / kPanel;
  for (int64_t k0 = 0; k0 < D; k0 += kKC) {
    const int64_t kc = std::min(kKC, D - k0);
    for (int64_t p = 0; p < np; ++p) {
      for (int64_t c0 = 0; c0 < kPanel; c0 += cols) {
        const float* bp = panels + p * D * kPanel + k0 * kPanel + c0;
        float* cp = c + p * kPanel + c0;
        int64_t i = 0;
        for (; i + MR <= mb; i += MR) micro_kernel<V, MR, NV>(x + i * D + k0, D, bp, kc, cp + i * ldc, ldc, k0 > 0);
        if (i < mb)
          micro_tail<V, NV>(int(mb - i), x + i * D + k0, D, bp, kc, cp + i * ldc, ldc, k0 > 0,
                            std::make_integer_sequence<int, MR - 1>{});
      }
    }
  }
}

}  // namespace
}  // namespace manifpt::detail
