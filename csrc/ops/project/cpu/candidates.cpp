// Stage 3 of the CPU projection: candidate search (stages.h).
//
// For each tile of reals (centred and packed once, |y|^2 once per real) and each block of fakes: the
// cross term x.y into an O(tile) buffer (kernels.h), then a scan of the approximate distances
// |x|^2 + |y|^2 - 2 x.y (scan_row) that keeps every real that may be the nearest.
//
// Why candidates and not just the expansion's argmin: the expansion cancels catastrophically when
// vectors share a large offset (pixels of similar images). Its error is at most
// g * (|x| + |y|)^2 (select.h); with U = min_j (d~_j + bound_j), every real with d~_j - bound_j <= U
// may be the true argmin and is kept, every other real provably is not. Centring on the reals' mean
// shrinks |x| and |y|, and so the bound, by orders of magnitude on image data. A full candidate list
// drops its worst real and remembers its bound (row_state.h); a row whose dropped reals may tie its best
// (duplicates, degenerate data) is scanned directly by the re-rank.
//
// Two parallel strategies. Enough fake blocks for every thread: tiles of reals in sequence, each
// packed once (in parallel) and shared, an equal share of the fakes per thread (one lane of state). Few fakes:
// the reals are split into contiguous ranges, one per thread, each with its own lane of state, merged
// by the re-rank.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/project/cpu/kernels.h"
#include "ops/project/cpu/pack.h"
#include "ops/project/cpu/stages.h"
#include "ops/project/select.h"

namespace manifpt::detail {

template <typename T>
void scan_row(const T* c, const T* yn, int64_t nb, T xn, T bound, int64_t j0, RowState<T>& st) {
  if (st.count == kOverflow) return;
  if (!(bound < std::numeric_limits<T>::infinity())) {  // no usable bound: direct scan
    st.count = kOverflow;
    return;
  }
  // Pass 1: the tile's smallest approximate distance lowers the row's upper bound. Doing this
  // before collecting keeps the first tile from flooding the list (U starts at +inf).
  T dmin = std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < nb; ++j) {
    const T d = xn + yn[j] - T(2) * c[j];
    dmin = d < dmin ? d : dmin;
  }
  const T up = dmin + bound;
  if (up < st.upper) st.upper = up;
  // Pass 2: keep every real whose lower bound d~ - bound does not exceed U.
  const T th = st.upper + bound;
  for (int64_t j = 0; j < nb; ++j) {
    const T d = xn + yn[j] - T(2) * c[j];
    if (d <= th) push_candidate(st, j0 + j, d - bound);
  }
}
template void scan_row<float>(const float*, const float*, int64_t, float, float, int64_t, RowState<float>&);
template void scan_row<double>(const double*, const double*, int64_t, double, double, int64_t, RowState<double>&);

namespace {

// One packed tile of reals: centred, |y|^2 per real, |y| per real (for the bound).
template <typename T>
struct RealsTile {
  AlignedVector<T> y;
  std::vector<T> yn;
  std::vector<double> ynorm;
  double ymax(int64_t nb) const { return *std::max_element(ynorm.begin(), ynorm.begin() + nb); }
};

}  // namespace

template <typename scalar_t, typename T>
CandidateLists<T> find_candidates(const scalar_t* Y, int64_t M, int64_t N, int64_t D, const T* mu,
                                  const CentredFakes<T>& fakes, const Blocking& blk, CpuPath path) {
  const int threads = std::max(1, at::get_num_threads());
  constexpr bool is_float = std::is_same_v<T, float>;
  const bool panels = is_float && path.panels();

  constexpr double u = std::numeric_limits<T>::epsilon() / 2;
  const double g = expansion_error_coeff(D, u);
  // Absolute slack for underflow (flush-to-zero may drop up to FLT_MIN per product).
  const double tiny = double(3 * D + 8) * double(std::numeric_limits<T>::min());
  // +inf when the expansion may overflow in T (|x.y| <= (|x| + |y|)^2 bounds every partial sum):
  // the scan then hands the row to the direct float64 scan.
  auto row_bound = [&](int64_t i, double ymax) -> T {
    const double s = (fakes.xnorm[i] + ymax) * (fakes.xnorm[i] + ymax);
    if (!(s <= double(std::numeric_limits<T>::max()) / 4)) return std::numeric_limits<T>::infinity();
    return T(g * s + tiny);
  };

  CandidateLists<T> out;
  const int64_t nblocks = (M + blk.mc - 1) / blk.mc;
  const int64_t ntiles = (N + blk.nc - 1) / blk.nc;
  out.lanes = nblocks >= threads ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, ntiles));
  out.direct_only = !std::isfinite(g);
  out.state.resize(size_t(out.lanes) * M);
  for (auto& s : out.state) {
    s.upper = std::numeric_limits<T>::infinity();
    s.evicted = std::numeric_limits<T>::infinity();
    s.count = 0;
  }
  if (out.direct_only) return out;

  const int64_t npanels = (blk.nc + kPanel - 1) / kPanel;
  // +16 floats: a power-of-two row stride would put the C rows of a micro-tile in the same L1 sets.
  const int64_t ldc = panels ? npanels * kPanel + 16 : blk.nc;
  auto make_tile = [&]() {
    return RealsTile<T>{AlignedVector<T>(size_t(panels ? npanels * kPanel : blk.nc) * D), std::vector<T>(blk.nc),
                        std::vector<double>(blk.nc)};
  };
  // Packs panels [p0, p1) of the tile (row-major paths: rows [p0 * kPanel, p1 * kPanel)).
  auto pack = [&](RealsTile<T>& tb, int64_t j0, int64_t nb, int64_t p0, int64_t p1) {
    if constexpr (is_float) {
      if (panels) {
        pack_reals_panels(Y, j0, nb, p0, p1, D, path.panel->cols, mu, tb.y.data(), tb.yn.data(), tb.ynorm.data(),
                          path.avx2);
        return;
      }
    }
    const int64_t r0 = p0 * kPanel, r1 = std::min(nb, p1 * kPanel);
    if (r1 > r0)
      pack_centred(Y + (j0 + r0) * D, r1 - r0, D, mu, tb.y.data() + r0 * D, tb.yn.data() + r0, tb.ynorm.data() + r0);
  };
  // Fakes [r0, r1) (r0 at a micro-panel) against one packed tile, in blocks of at most mc.
  auto search = [&](const RealsTile<T>& tb, double ymax, int64_t j0, int64_t nb, int64_t r0, int64_t r1,
                    RowState<T>* lane, T* cbuf) {
    for (int64_t i0 = r0; i0 < r1; i0 += blk.mc) {
      const int64_t mb = std::min(blk.mc, r1 - i0);
      if constexpr (is_float) {
        if (panels)
          path.panel->run(fakes.x, M, i0, mb, D, blk.kc, tb.y.data(), nb, cbuf, ldc, blk.prefetch);
        else
          cross_gemm_rowmajor(fakes.x + i0 * D, mb, tb.y.data(), nb, D, cbuf, path.gemm != Gemm::Portable);
      } else {
        cross_gemm_rowmajor(fakes.x + i0 * D, mb, tb.y.data(), nb, D, cbuf, path.gemm != Gemm::Portable);
      }
      const int64_t stride = panels ? ldc : nb;
      for (int64_t r = 0; r < mb; ++r) {
        const T* crow = cbuf + r * stride;
        const T bound = row_bound(i0 + r, ymax);
        if constexpr (is_float) {
          if (path.avx2) {
            scan_row_f32_avx2(crow, tb.yn.data(), nb, fakes.xn[i0 + r], bound, j0, lane[i0 + r]);
            continue;
          }
        }
        scan_row<T>(crow, tb.yn.data(), nb, fakes.xn[i0 + r], bound, j0, lane[i0 + r]);
      }
    }
  };

  if (out.lanes == 1) {
    // Each thread takes an equal share of the fakes (cut at micro-panels), in blocks of mc. Handing out
    // whole blocks instead left one thread a block more than the other (17 of 33 blocks at M = 4096,
    // 9 of 17 at M = 2048): the other idled for up to a tenth of the run.
    auto share = [&](int64_t t) { return std::min(M, (M * t / threads + blk.mr - 1) / blk.mr * blk.mr); };
    RealsTile<T> tb = make_tile();
    AlignedVector<T> cbufs(size_t(threads) * blk.mc * ldc);
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t j0 = t * blk.nc, nb = std::min(blk.nc, N - j0);
      const int64_t np = (nb + kPanel - 1) / kPanel;
      at::parallel_for(0, np, std::max<int64_t>(1, 2048 / D), [&](int64_t b, int64_t e) { pack(tb, j0, nb, b, e); });
      const double ymax = tb.ymax(nb);
      at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
        SingleThreadedBlas single;
        T* cbuf = cbufs.data() + size_t(at::get_thread_num()) * blk.mc * ldc;
        for (int64_t t = b; t < e; ++t) search(tb, ymax, j0, nb, share(t), share(t + 1), out.state.data(), cbuf);
      });
    }
  } else {
    at::parallel_for(0, out.lanes, 1, [&](int64_t lb, int64_t le) {
      SingleThreadedBlas single;
      RealsTile<T> tb = make_tile();
      AlignedVector<T> cbuf(size_t(blk.mc) * ldc);
      for (int64_t lane = lb; lane < le; ++lane) {
        for (int64_t t = ntiles * lane / out.lanes; t < ntiles * (lane + 1) / out.lanes; ++t) {
          const int64_t j0 = t * blk.nc, nb = std::min(blk.nc, N - j0);
          pack(tb, j0, nb, 0, (nb + kPanel - 1) / kPanel);
          search(tb, tb.ymax(nb), j0, nb, 0, M, out.state.data() + size_t(lane) * M, cbuf.data());
        }
      }
    });
  }
  return out;
}

#define MANIFPT_INSTANTIATE(S, T)                                                                                     \
  template CandidateLists<T> find_candidates<S, T>(const S*, int64_t, int64_t, int64_t, const T*, const CentredFakes<T>&, \
                                                   const Blocking&, CpuPath);
MANIFPT_FOR_EACH_CPU_TYPE(MANIFPT_INSTANTIATE)
#undef MANIFPT_INSTANTIATE

}  // namespace manifpt::detail
