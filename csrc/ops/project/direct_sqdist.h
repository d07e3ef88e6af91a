#pragma once
// The float64 direct-form squared distance that defines "exact" for the CPU op: the re-rank of
// manifpt::project and manifpt::row_sqdist both call this one function, so a streamed or distributed
// merge that breaks float32 ties with row_sqdist orders reals exactly as one project call does.
#include <cstdint>

namespace manifpt {

template <typename scalar_t>
inline double direct_sqdist(const scalar_t* x, const scalar_t* y, int64_t D) {
  // Differences of two floats are exact in double and their squares nearly so.
  double acc[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= D; k += 4)
    for (int u = 0; u < 4; ++u) {
      const double diff = double(x[k + u]) - double(y[k + u]);
      acc[u] += diff * diff;
    }
  double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (; k < D; ++k) {
    const double diff = double(x[k]) - double(y[k]);
    s += diff * diff;
  }
  return s;
}

}  // namespace manifpt
