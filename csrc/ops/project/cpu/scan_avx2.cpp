// AVX2/FMA version of the candidate scan (same two passes as detail::scan_row in candidates.cpp).
// This file alone is compiled with -mavx2 -mfma; candidates.cpp calls it only after cpu_has_avx2_fma(),
// which lives in isa.cpp because anything in this file may contain AVX2 instructions.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {

#if defined(__AVX2__) && defined(__FMA__)
namespace {
// d = (xn + yn) - 2c, evaluated as fma(-2, c, xn + yn); the error bound covers FMA or not.
inline __m256 approx_dist(__m256 xn, const float* yn, const float* c, __m256 minus_two) {
  return _mm256_fmadd_ps(minus_two, _mm256_loadu_ps(c), _mm256_add_ps(xn, _mm256_loadu_ps(yn)));
}
inline float scalar_dist(float xn, float yn, float c) { return std::fma(-2.f, c, xn + yn); }
}  // namespace

void scan_row_f32_avx2(const float* c, const float* yn, int64_t nb, float xn, float bound, int64_t j0,
                       RowState<float>& st) {
  if (st.count == kOverflow) return;
  if (!(bound < std::numeric_limits<float>::infinity())) {  // no usable bound: direct scan
    st.count = kOverflow;
    return;
  }
  const __m256 vxn = _mm256_set1_ps(xn), m2 = _mm256_set1_ps(-2.f);
  __m256 vmin = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= nb; j += 8) vmin = _mm256_min_ps(vmin, approx_dist(vxn, yn + j, c + j, m2));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmin);
  float dmin = std::numeric_limits<float>::infinity();
  for (float v : lanes) dmin = v < dmin ? v : dmin;
  for (; j < nb; ++j) {
    const float d = scalar_dist(xn, yn[j], c[j]);
    dmin = d < dmin ? d : dmin;
  }
  const float up = dmin + bound;
  if (up < st.upper) st.upper = up;

  const float th = st.upper + bound;
  const __m256 vth = _mm256_set1_ps(th);
  for (j = 0; j + 8 <= nb; j += 8) {
    const __m256 d = approx_dist(vxn, yn + j, c + j, m2);
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(d, vth, _CMP_LE_OQ));
    if (mask == 0) continue;  // the common case once the upper bound has settled
    alignas(32) float dv[8];
    _mm256_store_ps(dv, d);
    while (mask) {
      const int l = __builtin_ctz(mask);
      mask &= mask - 1;
      push_candidate(st, j0 + j + l, dv[l] - bound);
    }
  }
  for (; j < nb; ++j) {
    const float d = scalar_dist(xn, yn[j], c[j]);
    if (d <= th) push_candidate(st, j0 + j, d - bound);
  }
}
#else
void scan_row_f32_avx2(const float* c, const float* yn, int64_t nb, float xn, float bound, int64_t j0,
                       RowState<float>& st) {
  scan_row<float>(c, yn, nb, xn, bound, j0, st);
}
#endif

}  // namespace manifpt::detail
