#pragma once
// Packing: centre rows on the reals' mean in the working type T, with |row|^2 (rounded to T) and |row|
// (for the error bound), into the layout the GEMM reads (kernels.h):
//   fakes -> MR-row k-major micro-panels within K-blocks, packed once per call before the search, so
//            the K-block of any block of fakes is one contiguous stream reused by every panel of reals
//            (BLIS's packed A, here with the packing cost O(M * D) once per call, not per tile);
//   reals -> kPanel-wide panels of k-major sub-panels, one tile at a time (BLIS's packed B);
// or row-major for the BLAS and portable paths.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {

// 64-byte aligned storage: panel rows start on a cache line, so a 512-bit load touches one line.
template <typename T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <typename U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const AlignedAlloc<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAlloc<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, AlignedAlloc<T>>;

// The sums of squares: kLanes partial sums per row, element k into lane k % kLanes, added in ascending k
// within a lane and combined in a fixed tree (lane_total). Why lanes: they are the vector lanes of the AVX2
// packing of the reals (pack_avx2.cpp), and the scalar code here sums the same way, so every path, layout
// and chunking gives the same norms.
constexpr int kLanes = 8;
inline double lane_total(const double* l) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }

// One element: centred in float (the value stored) and its square in double. Values near the float32
// maximum can overflow the centring in float; their square is still finite in double, and the row's norm
// then sends it to the direct float64 scan (the row's bound is +inf).
template <typename scalar_t>
inline float centre_one(scalar_t s, float m, double& sq) {
  const float v = float(s) - m;
  const double dv = std::isfinite(v) ? double(v) : double(s) - double(m);
  sq = dv * dv;
  return v;
}

// Centres columns [k0, k1) of one row s into d[(k - k0) * stride], adding the squares to lanes[k % kLanes].
template <typename scalar_t, typename T>
inline void centre_row(const scalar_t* s, const T* mu, int64_t k0, int64_t k1, T* d, int64_t stride, double* lanes) {
  for (int64_t k = k0; k < k1; ++k) {
    double sq;
    if constexpr (std::is_same_v<T, float>) {
      d[(k - k0) * stride] = centre_one(s[k], mu[k], sq);
    } else {  // float64 working type: centred in double
      const double v = double(s[k]) - double(mu[k]);
      d[(k - k0) * stride] = v;
      sq = v * v;
    }
    lanes[k % kLanes] += sq;
  }
}

// |row|^2 (rounded to T) and |row| from each row's lanes; false when one is not finite.
template <typename T>
bool finish_norms(const double* lanes, int64_t rows, T* sqnorm, double* norm) {
  bool finite = true;
  for (int64_t r = 0; r < rows; ++r) {
    const double acc = lane_total(lanes + r * kLanes);
    finite = finite && std::isfinite(acc);
    sqnorm[r] = T(acc);
    norm[r] = std::sqrt(acc);
  }
  return finite;
}

// Centre `rows` rows of src on mu into dst (row-major, working type), with |row|^2 rounded to T and
// |row|. Returns false when a row's sum of squares is not finite.
template <typename scalar_t, typename T>
bool pack_centred(const scalar_t* src, int64_t rows, int64_t D, const T* mu, T* dst, T* sqnorm, double* norm) {
  bool finite = true;
  for (int64_t r = 0; r < rows; ++r) {
    double lanes[kLanes] = {};
    centre_row(src + r * D, mu, 0, D, dst + r * D, 1, lanes);
    finite = finish_norms(lanes, 1, sqnorm + r, norm + r) && finite;
  }
  return finite;
}

// Centres columns [ka, kb) of rows [r0, r1) of src (row-major, D wide, `rows` rows of data) into a k-major
// chunk that starts at column k0: dst[(k - k0) * width + r]; rows r >= rows are zero (padding). Row r's
// squares go to its lanes, lanes[r * kLanes ...].
template <typename scalar_t>
void centre_kmajor_rows(const scalar_t* src, int64_t rows, int64_t r0, int64_t r1, int64_t width, int64_t D, int64_t k0,
                        int64_t ka, int64_t kb, const float* mu, float* dst, double* lanes) {
  for (int64_t r = r0; r < r1; ++r) {
    float* d = dst + (ka - k0) * width + r;
    if (r >= rows) {
      for (int64_t k = ka; k < kb; ++k) d[(k - ka) * width] = 0.f;
      continue;
    }
    centre_row(src + r * D, mu, ka, kb, d, width, lanes + r * kLanes);
  }
}

// Columns [k0, k1) of all `width` rows into the chunk dst (centre_kmajor_rows), by the AVX2 code
// (pack_avx2.cpp) for float rows when avx2 (the CPU has it).
template <typename scalar_t>
void centre_kmajor_chunk(const scalar_t* src, int64_t rows, int64_t width, int64_t D, int64_t k0, int64_t k1,
                         const float* mu, float* dst, double* lanes, bool avx2) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (avx2) return centre_kmajor_chunk_f32_avx2(src, rows, width, D, k0, k1, mu, dst, lanes);
  }
  centre_kmajor_rows(src, rows, 0, width, width, D, k0, k0, k1, mu, dst, lanes);
}

// Centre `rows` rows of src (row-major, D wide) into dst k-major: dst[k * width + r], rows r in
// [rows, width) zero (padding). Walks K in chunks so that the chunk of dst being written (width x
// kChunk floats) stays in L1 while each source row streams. Returns false when a sum of squares is not
// finite.
template <typename scalar_t>
bool pack_kmajor(const scalar_t* src, int64_t rows, int64_t width, int64_t D, const float* mu, float* dst, float* sqnorm,
                 double* norm, bool avx2) {
  constexpr int64_t kChunk = 128;
  double lanes[kPanel * kLanes] = {};  // width <= kPanel
  for (int64_t k0 = 0; k0 < D; k0 += kChunk)
    centre_kmajor_chunk(src, rows, width, D, k0, std::min(D, k0 + kChunk), mu, dst + k0 * width, lanes, avx2);
  return finish_norms(lanes, rows, sqnorm, norm);
}

// Fakes [r0, r1) of M, r0 a multiple of mr, into micro-panels of K-blocks (kernels.h): the K-block
// [k0, k0 + kw) of all fakes is one slab at dst + k0 * M, in which the micro-panel of row g0 starts at
// g0 * kw and is [k][rows], rows = min(mr, M - g0); the layout takes exactly M * D. Why K-blocks: a block
// of fakes is re-read from L2 for every panel of reals, and the slab keeps its kc x mb slice in one
// contiguous run. With whole-D micro-panels the slices sat at a stride of D * mr floats, which for D a
// power of two mapped them onto a few L2 sets (D = 12288: 2 of the 16 set groups of a 64 KB way) and
// evicted them. |row|^2 sums in the lanes of every other packing (kLanes above).
template <typename scalar_t>
bool pack_fakes_micro(const scalar_t* X, int64_t M, int64_t r0, int64_t r1, int64_t D, int mr, int64_t kc,
                      const float* mu, float* dst, float* sqnorm, double* norm, bool avx2) {
  bool finite = true;
  std::vector<double> lanes(static_cast<size_t>(mr) * kLanes);
  for (int64_t g0 = r0; g0 < r1; g0 += mr) {
    const int64_t rows = std::min<int64_t>(mr, M - g0);
    std::fill(lanes.begin(), lanes.end(), 0.0);
    for (int64_t k0 = 0; k0 < D; k0 += kc)  // the slab [k - k0][r] (kw x rows floats) stays in L1 while rows stream
      centre_kmajor_chunk(X + g0 * D, rows, rows, D, k0, std::min(D, k0 + kc), mu,
                          dst + k0 * M + g0 * std::min(kc, D - k0), lanes.data(), avx2);
    finite = finish_norms(lanes.data(), rows, sqnorm + g0, norm + g0) && finite;
  }
  return finite;
}

// Panels [p0, p1) of a tile of nb reals starting at real j0, into [panel][sub][k][cols] (kernels.h); rows
// from nb up to the last panel's end are zero padding. One panel is written by one thread (no shared
// cache lines).
template <typename scalar_t>
void pack_reals_panels(const scalar_t* Y, int64_t j0, int64_t nb, int64_t p0, int64_t p1, int64_t D, int64_t cols,
                       const float* mu, float* panels, float* sqnorm, double* norm, bool avx2) {
  for (int64_t q = p0 * (kPanel / cols); q < p1 * (kPanel / cols); ++q) {
    const int64_t r0 = q * cols, rows = std::clamp<int64_t>(nb - r0, 0, cols);
    pack_kmajor(Y + (j0 + std::min(r0, nb)) * D, rows, cols, D, mu, panels + q * D * cols, sqnorm + r0, norm + r0, avx2);
  }
}

}  // namespace manifpt::detail
