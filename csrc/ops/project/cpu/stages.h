#pragma once
// The stages of the CPU projection and what passes between them (driver: ../project.cpp):
//   1. mean of the reals (project.cpp);
//   2. centred, packed fakes (pack.h) -> CentredFakes;
//   3. candidate search (candidates.cpp): tile of reals -> GEMM micro-kernel -> per-row candidate scan
//      -> CandidateLists, the "tile -> select -> merge" structure of FAISS's exhaustive search, with a
//      candidate list bounded by the expansion's error instead of FAISS's k best;
//   4. exact re-rank of the candidates and the artifact (rerank.cpp).
#include <cstdint>
#include <vector>

#include "ops/project/cpu/blocking.h"
#include "ops/project/cpu/isa.h"
#include "ops/project/cpu/row_state.h"

namespace manifpt::detail {

template <typename T>
struct CentredFakes {
  const T* x;  // M x D: K-blocks of micro-panels of blocking.mr rows on the panel paths (pack.h), else row-major
  const T* xn;  // |x_i|^2 rounded to T
  const double* xnorm;  // |x_i|
};

template <typename T>
struct CandidateLists {
  int64_t lanes = 1;         // independent partitions of the reals, each with its own state per fake
  bool direct_only = false;  // D too large for the error bound: every fake is scanned directly
  std::vector<RowState<T>> state;  // lanes x M
};

template <typename scalar_t, typename T>
CandidateLists<T> find_candidates(const scalar_t* Y, int64_t M, int64_t N, int64_t D, const T* mu,
                                  const CentredFakes<T>& fakes, const Blocking& blocking, CpuPath path);

template <typename scalar_t, typename T>
void rerank_and_artifact(const scalar_t* X, const scalar_t* Y, int64_t M, int64_t N, int64_t D,
                         const CandidateLists<T>& cands, scalar_t* A, int64_t* I, float* dist);

// Explicit instantiations (candidates.cpp, rerank.cpp): the working type T is float for float32,
// float16 and bfloat16 inputs and double for float64.
#define MANIFPT_FOR_EACH_CPU_TYPE(X) \
  X(float, float)                    \
  X(double, double)                  \
  X(c10::Half, float)                \
  X(c10::BFloat16, float)

}  // namespace manifpt::detail
