// AVX-512 cross term of the CPU kernel (driver in gemm_panels.h): 8 fakes x 32 reals = 16 zmm
// accumulators. Why our own GEMM: the BLAS torch ships (MKL) runs its AVX2 path on AMD CPUs, below
// what FAISS reaches with OpenBLAS; this kernel beats both where the CPU has 512-bit FMA units
// (benchmarks/RESULTS.md). This file alone is compiled with -mavx512f (CMakeLists.txt); its kernel
// registers itself (kernels.h) and runs only once isa.cpp has seen the CPU report avx512f.
#include <immintrin.h>

#include "ops/project/cpu/gemm_panels.h"

namespace manifpt::detail {

#if defined(__AVX512F__)
namespace {
struct Avx512 {
  using vec = __m512;
  static constexpr int W = 16;
  static vec load(const float* p) { return _mm512_loadu_ps(p); }  // unaligned loads: same speed on aligned data
  static void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float v) { return _mm512_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
};

void run(const float* fakes, int64_t M, int64_t i0, int64_t mb, int64_t D, int64_t kc, const float* panels, int64_t nb,
         float* c, int64_t ldc, bool prefetch) {
  cross_gemm_panels<Avx512, 8, 2>(fakes, M, i0, mb, D, kc, panels, nb, c, ldc, prefetch);
}

constexpr PanelGemm kKernel{"avx512", 20, 8, 32, "avx512f,avx2,fma", run};
const bool registered = register_panel_gemm(&kKernel);
}  // namespace
#endif

}  // namespace manifpt::detail
