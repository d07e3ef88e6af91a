// AVX2 packing of float rows into the k-major layouts the panel GEMMs read (kernels.h): one chunk of
// columns of up to kPanel rows, the same values and norms, bit for bit, as centre_kmajor_chunk (pack.h),
// which it replaces for float inputs on every CPU that runs a panel GEMM (all of them need AVX2): the
// sub-panels of reals and the micro-panels of fakes.
//
// Why: the scalar packing did one element at a time, with a store `width` floats away from the last
// and a double square added to its row's lane, about a dozen instructions an element. At (2048, 8192,
// 12288) it was 6% of the op on an Intel Xeon, and at few fakes (16 of them) a third of it
// (benchmarks/RESULTS.md). Here 8 rows x 8 columns go at once: eight row loads, an 8 x 8 transpose in
// registers, eight contiguous stores, and the squares in two double vectors a row, lanes k % 8 as in
// pack.h. A block with a value that does not centre to a finite float (|y| near FLT_MAX) is redone by
// the scalar code, which handles it; so are the columns past the last multiple of 8. Groups with fewer
// than 8 rows (the 6-row micro-panels of the avx2 kernel, a last partial panel) are padded with zeros in
// registers.
//
// This file alone is compiled with -mavx2 -mfma -ffp-contract=off (CMakeLists.txt): the scalar code it
// shares with pack.h must not fuse its multiply-adds, or its norms would differ from pack.h's.
#include <immintrin.h>

#include "ops/project/cpu/pack.h"

namespace manifpt::detail {

#if defined(__AVX2__)
namespace {

// c[i] = (r[0][i], ..., r[7][i]): the 8 x 8 transpose of unpack, shuffle and lane permute.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3 and 4-7
    const __m256 *a = t + 4 * h;
    s[4 * h + 0] = _mm256_shuffle_ps(a[0], a[2], 0x44);
    s[4 * h + 1] = _mm256_shuffle_ps(a[0], a[2], 0xEE);
    s[4 * h + 2] = _mm256_shuffle_ps(a[1], a[3], 0x44);
    s[4 * h + 3] = _mm256_shuffle_ps(a[1], a[3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
  }
}

// Columns [k, k + 8) of a group of gw <= 8 rows starting at src (rows D apart), of which the first n hold
// data and the rest are zero padding; k % 8 == 0. d: where the group's column k goes (columns `width`
// floats apart). Returns false, having written nothing, when a centred value is not finite.
// A group narrower than 8 is a whole micro-panel (4 <= gw == width < 8): each column's 8-float store runs
// into the next column, which the next store rewrites; the last column's store is masked to gw floats.
inline bool block8(const float* src, int n, int gw, int64_t D, const float* mu, int64_t k, float* d, int64_t width,
                   double* lanes) {
  const __m256 m = _mm256_loadu_ps(mu + k);
  const __m256i exp = _mm256_set1_epi32(0x7f800000);
  __m256 v[8];
  __m256i bad = _mm256_setzero_si256();
  for (int j = 0; j < 8; ++j) {
    if (j >= n) {
      v[j] = _mm256_setzero_ps();
      continue;
    }
    v[j] = _mm256_sub_ps(_mm256_loadu_ps(src + j * D + k), m);
    bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v[j]), exp), exp));
  }
  if (!_mm256_testz_si256(bad, bad)) return false;
  for (int j = 0; j < n; ++j) {
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v[j])), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v[j], 1));
    double* l = lanes + j * kLanes;
    _mm256_storeu_pd(l, _mm256_add_pd(_mm256_loadu_pd(l), _mm256_mul_pd(lo, lo)));
    _mm256_storeu_pd(l + 4, _mm256_add_pd(_mm256_loadu_pd(l + 4), _mm256_mul_pd(hi, hi)));
  }
  transpose8(v);
  if (gw == 8) {
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d + i * width, v[i]);
  } else {
    for (int i = 0; i < 7; ++i) _mm256_storeu_ps(d + i * width, v[i]);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(d + 7 * width, _mm256_cmpgt_epi32(_mm256_set1_epi32(gw), lane), v[7]);
  }
  return true;
}

}  // namespace

void centre_kmajor_chunk_f32_avx2(const float* src, int64_t rows, int64_t width, int64_t D, int64_t k0, int64_t k1,
                                  const float* mu, float* dst, double* lanes) {
  const int64_t k8 = k0 + (k1 - k0) / 8 * 8;
  for (int64_t r0 = 0; r0 < width; r0 += 8) {
    const int n = int(std::clamp<int64_t>(rows - r0, 0, 8)), gw = int(std::min<int64_t>(8, width - r0));
    const float* s = src + std::min(r0, rows) * D;
    double* l = lanes + r0 * kLanes;
    int64_t k = k0;
    // A narrow group's column stores stay inside its block only when it is the whole width and 4 to 8
    // wide (block8); other narrow groups, and the last micro-panel of fewer than 4 fakes, go scalar.
    if (gw == 8 || (width <= 8 && width >= 4)) {
      // The group's next chunk, into L2: its rows, D floats apart, are short streams, too many for the
      // hardware prefetchers, and the loads here otherwise wait on memory.
      for (int j = 0; j < n; ++j)
        for (int64_t c = k1; c < std::min(D, 2 * k1 - k0); c += 16)
          _mm_prefetch(reinterpret_cast<const char*>(s + j * D + c), _MM_HINT_T1);
      for (; k < k8; k += 8)
        if (!block8(s, n, gw, D, mu, k, dst + (k - k0) * width + r0, width, l))
          centre_kmajor_rows(src, rows, r0, r0 + gw, width, D, k0, k, k + 8, mu, dst, lanes);
    }
    centre_kmajor_rows(src, rows, r0, r0 + gw, width, D, k0, k, k1, mu, dst, lanes);  // what block8 did not take
  }
}
#endif

}  // namespace manifpt::detail
