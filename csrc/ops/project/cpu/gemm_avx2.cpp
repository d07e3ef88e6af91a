// AVX2/FMA cross term of the CPU kernel (driver in gemm_panels.h): 6 fakes x 16 reals = 12 ymm
// accumulators + 2 panel registers + 1 broadcast (15 of the 16 ymm: 3 x 32 would spill), one pass per
// 16-wide sub-panel (two per 32-wide panel).
// For CPUs without AVX-512. This file alone is compiled with -mavx2 -mfma (CMakeLists.txt); its
// kernel registers itself (kernels.h) and runs only once isa.cpp has seen the CPU report avx2 and fma.
#include <immintrin.h>

#include "ops/project/cpu/gemm_panels.h"

namespace manifpt::detail {

#if defined(__AVX2__) && defined(__FMA__)
namespace {
struct Avx2 {
  using vec = __m256;
  static constexpr int W = 8;
  static vec load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float v) { return _mm256_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
};

void run(const float* fakes, int64_t M, int64_t i0, int64_t mb, int64_t D, int64_t kc, const float* panels, int64_t nb,
         float* c, int64_t ldc, bool prefetch) {
  cross_gemm_panels<Avx2, 6, 2>(fakes, M, i0, mb, D, kc, panels, nb, c, ldc, prefetch);
}

constexpr PanelGemm kKernel{"avx2", 10, 6, 16, "avx2,fma", run};
const bool registered = register_panel_gemm(&kKernel);
}  // namespace
#endif

}  // namespace manifpt::detail
