// AVX-512 cross term of the CPU kernel: c[i * ldc + j] = x_i . y_j for a block of centred fakes
// (row-major, D wide) against a tile of centred reals packed in panels of 32 (layout [panel][k][32]).
//
// Why our own GEMM: the BLAS torch ships (MKL) runs its AVX2 path on AMD CPUs, and the numbers
// FAISS reaches with OpenBLAS are above it; a register-blocked AVX-512 kernel on the packed tile
// beats both where the CPU has 512-bit FMA units. Register block: 8 fakes x 32 reals = 16 zmm
// accumulators; per k two panel loads and eight broadcasts straight from the fakes' rows (8
// sequential streams the prefetcher follows, so the fakes need no packing). K is blocked by 256 so
// a panel slice (32 KB) stays in L1 across all rows of the block. This file alone is compiled with
// -mavx512f; it is called only when the CPU reports AVX-512F.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/project/project.h"

namespace manifpt::detail {

bool cpu_has_avx512f() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

#if defined(__AVX512F__)
namespace {
constexpr int64_t kKC = 256;

template <int MR>
inline void micro_kernel(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, bool accumulate) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc0[r] = accumulate ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
    acc1[r] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bp + k * kPanel), b1 = _mm512_loadu_ps(bp + k * kPanel + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    _mm512_storeu_ps(c + r * ldc, acc0[r]);
    _mm512_storeu_ps(c + r * ldc + 16, acc1[r]);
  }
}

template <int... R>
inline void micro_tail(int rows, const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, bool acc,
                       std::integer_sequence<int, R...>) {
  ((rows == R ? micro_kernel<R>(a, lda, bp, kc, c, ldc, acc) : void()), ...);
}
}  // namespace

void cross_gemm_avx512(const float* x, int64_t mb, int64_t D, const float* panels, int64_t nb, float* c, int64_t ldc) {
  const int64_t np = (nb + kPanel - 1) / kPanel;
  for (int64_t k0 = 0; k0 < D; k0 += kKC) {
    const int64_t kc = std::min(kKC, D - k0);
    for (int64_t p = 0; p < np; ++p) {
      const float* bp = panels + p * D * kPanel + k0 * kPanel;
      float* cp = c + p * kPanel;
      int64_t i = 0;
      for (; i + 8 <= mb; i += 8) micro_kernel<8>(x + i * D + k0, D, bp, kc, cp + i * ldc, ldc, k0 > 0);
      if (i < mb)
        micro_tail(int(mb - i), x + i * D + k0, D, bp, kc, cp + i * ldc, ldc, k0 > 0,
                   std::integer_sequence<int, 1, 2, 3, 4, 5, 6, 7>{});
    }
  }
}
#else
void cross_gemm_avx512(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t) {
  TORCH_CHECK(false, "manifpt: built without AVX-512 support");
}
#endif

}  // namespace manifpt::detail
