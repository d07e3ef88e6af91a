// Stage 4 of the CPU projection: exact re-rank of the surviving candidates and the artifact (stages.h).
//
// Per fake: the candidates of every lane whose lower bound does not exceed the smallest upper bound
// are ranked in the direct form sum((x - y)^2) in float64 on the original values (direct_sqdist.h,
// the definition of "exact" shared with row_sqdist), lowest index on ties (select.h), and the artifact
// row x - y* is written in the same pass. A row with no usable candidate list, or whose full list
// dropped a real that may be as near as the listed best, is scanned directly (and counted).
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "ops/project/cpu/stages.h"
#include "ops/project/direct_sqdist.h"
#include "ops/project/project.h"
#include "ops/project/select.h"

namespace manifpt {
namespace {
std::atomic<int64_t> g_direct_rows{0};  // rows scanned directly, for cpu_direct_rows (project.h)
}  // namespace

int64_t cpu_direct_rows() { return g_direct_rows.load(std::memory_order_relaxed); }
}  // namespace manifpt

namespace manifpt::detail {

template <typename scalar_t, typename T>
void rerank_and_artifact(const scalar_t* X, const scalar_t* Y, int64_t M, int64_t N, int64_t D,
                         const CandidateLists<T>& cands, scalar_t* A, int64_t* I, float* dist) {
  const int64_t lanes = cands.lanes;
  at::parallel_for(0, M, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const scalar_t* x = X + i * D;
      T upper = std::numeric_limits<T>::infinity(), evicted = std::numeric_limits<T>::infinity();
      bool scan_all = cands.direct_only;
      int64_t live = 0;
      for (int64_t l = 0; l < lanes && !scan_all; ++l) {
        const RowState<T>& st = cands.state[size_t(l) * M + i];
        if (st.count == kOverflow) scan_all = true;
        upper = std::min(upper, st.upper);
        evicted = std::min(evicted, st.evicted);
        live += std::max(st.count, 0);
      }
      // No candidate at all can only come from non-finite approximate distances (overflowing
      // squares in the working type): the direct form in float64 still ranks those rows.
      scan_all = scan_all || live == 0;
      double best = std::numeric_limits<double>::infinity();
      int64_t best_j = -1;
      if (!scan_all) {
        for (int64_t l = 0; l < lanes; ++l) {
          const RowState<T>& st = cands.state[size_t(l) * M + i];
          for (int32_t k = 0; k < st.count; ++k)
            if (st.cand[k].lower <= upper)
              merge_min(best, best_j, direct_sqdist(x, Y + st.cand[k].index * D, D), st.cand[k].index);
        }
        // A real dropped from a full list (row_state.h) has an exact distance >= evicted: the listed
        // best is the answer only when it is strictly nearer than that.
        scan_all = !(best < double(evicted));
      }
      if (scan_all) {
        g_direct_rows.fetch_add(1, std::memory_order_relaxed);
        best = std::numeric_limits<double>::infinity();
        best_j = -1;
        for (int64_t j = 0; j < N; ++j) merge_min(best, best_j, direct_sqdist(x, Y + j * D, D), j);
      }
      // Only float64 inputs can get here (float squares never overflow a double).
      TORCH_CHECK(best_j >= 0 && std::isfinite(best),
                  "manifpt.project: every distance of fake ", i, " overflows float64 (reals or fakes have values too large)");
      I[i] = best_j;
      dist[i] = float(best);
      const scalar_t* y = Y + best_j * D;
      scalar_t* a = A + i * D;
      for (int64_t k = 0; k < D; ++k) a[k] = scalar_t(T(x[k]) - T(y[k]));
    }
  });
}

#define MANIFPT_INSTANTIATE(S, T)                                                                                  \
  template void rerank_and_artifact<S, T>(const S*, const S*, int64_t, int64_t, int64_t, const CandidateLists<T>&, \
                                          S*, int64_t*, float*);
MANIFPT_FOR_EACH_CPU_TYPE(MANIFPT_INSTANTIATE)
#undef MANIFPT_INSTANTIATE

}  // namespace manifpt::detail
