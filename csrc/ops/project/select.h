#pragma once
// Selection logic shared by the CPU and CUDA kernels (host/device functions), so that the CPU
// tests exercise the same tie and merge rules the GPU uses.
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define MANIFPT_HD __host__ __device__ __forceinline__
#else
#define MANIFPT_HD inline
#endif

namespace manifpt {

// (distance, index) pairs order lexicographically: the smaller distance wins, and on an exact tie
// the lower index wins. Every reduction (within a tile, across tiles, across partitions of the
// reals, across ranks) uses this one rule, which is what makes the result independent of tiling.
template <typename T>
MANIFPT_HD bool better(T d_a, int64_t i_a, T d_b, int64_t i_b) {
  return d_a < d_b || (d_a == d_b && i_a < i_b);
}

// Merge a partial minimum (d, i) into a running one.
template <typename T>
MANIFPT_HD void merge_min(T& best_d, int64_t& best_i, T d, int64_t i) {
  if (better(d, i, best_d, best_i)) {
    best_d = d;
    best_i = i;
  }
}

// Coefficient g of the a-priori bound on the error of the expansion |x|^2 + |y|^2 - 2 x.y, evaluated
// in floating point with unit roundoff u on vectors that were centred (rounded) first:
//   |d_approx - d_exact| <= g * (|x| + |y|)^2.
// Dot products and sums of squares of length D carry gamma_D = D u / (1 - D u) (any summation order,
// FMA or not); the three additions, the rounding of the norms to the working type and the rounding
// of the centring add a few u each; (D + 8) covers them with room to spare. Returns +inf when the
// bound is meaningless (D u >= 1/2), which sends every row to the direct scan.
MANIFPT_HD double expansion_error_coeff(int64_t D, double unit_roundoff) {
  const double n = static_cast<double>(D + 8) * unit_roundoff;
  if (n >= 0.5) return std::numeric_limits<double>::infinity();
  return 1.01 * n / (1.0 - n);
}

}  // namespace manifpt
