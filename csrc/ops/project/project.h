#pragma once
// manifpt::project — exact nearest real sample of every fake, and the artifact, in one fused op.
//
// Args:
//   fakes   Tensor[M, *S]  float32 | float64 | float16 | bfloat16, any strides
//   reals   Tensor[N, *S]  same dtype and device, N >= 1
//   tile_m  int            rows of fakes per tile (0 = automatic); tests force small tiles
//   tile_n  int            rows of reals per tile (0 = automatic)
// Returns:
//   artifact Tensor[M, *S] fakes - reals[index], dtype of fakes, contiguous
//   index    Tensor[M]     int64, argmin_j ||fakes[i] - reals[j]||^2, lowest j on ties
//   distance Tensor[M]     float32, that squared distance (evaluated in float64, then rounded)
//
// The flattened dimension is D = prod(S). Memory beyond inputs and outputs is O(tile) plus a small
// candidate list per fake; the M x N distance matrix never exists.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace manifpt {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cpu(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                           int64_t tile_n);

namespace detail {

// Candidate scan of one tile of approximate distances d(i, j) = xn[i] + yn[j] - 2 c[i, j] for one row
// (see project.cpp for the invariants). Implemented portably and for AVX2/FMA (scan_avx2.cpp).
template <typename T>
struct Candidate {
  T lower;  // a lower bound on the exact distance of this real
  int64_t index;
};
constexpr int kMaxCandidates = 16;
constexpr int32_t kOverflow = -1;

// T is the working type of the approximate distances: float for float32/float16/bfloat16 inputs,
// double for float64 inputs.
template <typename T>
struct RowState {
  T upper;        // an upper bound on the exact minimum distance of the row
  int32_t count;  // number of live candidates; kOverflow: too many, the row is scanned directly
  Candidate<T> cand[kMaxCandidates];
};

// Adds a real with lower bound `lower` to the row's candidates. When the list is full, candidates
// that the (since lowered) upper bound has ruled out are dropped; if none can be, the row overflows.
template <typename T>
inline void push_candidate(RowState<T>& st, int64_t index, T lower) {
  if (st.count == kOverflow) return;
  if (st.count == kMaxCandidates) {
    int32_t kept = 0;
    for (int32_t k = 0; k < st.count; ++k)
      if (st.cand[k].lower <= st.upper) st.cand[kept++] = st.cand[k];
    st.count = kept;
    if (kept == kMaxCandidates) {
      st.count = kOverflow;
      return;
    }
  }
  st.cand[st.count++] = Candidate<T>{lower, index};
}

// Candidate scan of one row of a tile: c[j] = x.y_j (centred), yn[j] = |y_j|^2, xn = |x|^2, bound =
// the expansion error bound for this row and tile, j0 = global index of the tile's first real.
template <typename T>
void scan_row(const T* c, const T* yn, int64_t nb, T xn, T bound, int64_t j0, RowState<T>& st);
void scan_row_f32_avx2(const float* c, const float* yn, int64_t nb, float xn, float bound, int64_t j0, RowState<float>& st);
bool cpu_has_avx2_fma();

// Our cross-term GEMMs (gemm_avx512.cpp, gemm_avx2.cpp; driver in gemm_panels.h): reals packed in
// panels of kPanel, layout [panel][k][kPanel], zero-padded to a whole panel; c has leading dimension
// ldc >= round_up(nb, kPanel).
constexpr int64_t kPanel = 32;
bool cpu_has_avx512f();
void cross_gemm_avx512(const float* x, int64_t mb, int64_t D, const float* panels, int64_t nb, float* c, int64_t ldc);
void cross_gemm_avx2(const float* x, int64_t mb, int64_t D, const float* panels, int64_t nb, float* c, int64_t ldc);

}  // namespace detail
}  // namespace manifpt
