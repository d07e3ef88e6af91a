// manifpt::project: schema and CPU kernel.
//
// The CPU kernel, per call:
//   1. mean of the reals in float64 (one pass; its finiteness is also the NaN/Inf check of reals);
//   2. fakes centred on that mean, in the working type T (float, or double for float64 inputs),
//      with |x|^2 and |x| per fake (the sum of squares in float64 is the NaN/Inf check of fakes);
//   3. for each tile of reals (centred, packed once, |y|^2 once per real) and each block of fakes:
//      the cross term x.y into an O(tile) buffer (our AVX-512/AVX2 GEMM on packed panels, or BLAS
//      sgemm_, or portable C++), then a candidate scan of the approximate distances
//      |x|^2 + |y|^2 - 2 x.y (scan_row);
//   4. per fake: exact re-rank of the surviving candidates in the direct form sum((x - y)^2) in
//      float64 on the original values, lowest index on ties, and the artifact row x - y* written in
//      the same pass.
//
// Why candidates and not just the expansion's argmin: the expansion cancels catastrophically when
// vectors share a large offset (pixels of similar images). Its error is at most
// g * (|x| + |y|)^2 (select.h); with U = min_j (d~_j + bound_j), every real with d~_j - bound_j <= U
// may be the true argmin and is kept, every other real provably is not. Centring on the reals' mean
// shrinks |x| and |y|, and so the bound, by orders of magnitude on image data. A row whose candidate
// list overflows (many reals within the bound: duplicates, degenerate data) is scanned directly.
#include "ops/project/project.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "ops/project/direct_sqdist.h"
#include "ops/project/select.h"

// BLAS GEMM for the cross term. torch's x86 wheels link MKL into libtorch_cpu and export these
// symbols; we call them directly rather than at::mm / cpublas because torch may route float32
// matmuls to reduced precision (bf16/tf32 via set_float32_matmul_precision), which would void the
// error bound. Weak: a torch without them loads fine and uses the portable GEMM below.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
// The C entry point; the lower-case symbol is the Fortran one (takes int*).
int MKL_Set_Num_Threads_Local(int nthreads) __attribute__((weak));
}

namespace manifpt {
namespace detail {

// The CPU feature checks live here, in a file compiled without -mavx2/-mavx512f: in those files the
// compiler may use the wider instructions anywhere, so a check placed there could itself fault on the
// CPUs it is meant to detect.
bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

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

}  // namespace detail

namespace {

using detail::RowState;

// c[i * nb + j] = x_i . y_j for a block of mb centred fakes and nb centred reals (both row-major, D
// wide). The BLAS is column-major, so this is C^T (nb x mb) = Y (nb x D) * X^T.
template <typename T>
void cross_gemm(const T* x, int64_t mb, const T* y, int64_t nb, int64_t D, T* c, bool use_blas) {
  const bool fits_int = use_blas && D <= std::numeric_limits<int>::max() && mb * nb <= std::numeric_limits<int>::max();
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_ && fits_int) {
      const int m = int(nb), n = int(mb), k = int(D);
      const float one = 1.f, zero = 0.f;
      sgemm_("T", "N", &m, &n, &k, &one, y, &k, x, &k, &zero, c, &m);
      return;
    }
  } else {
    if (dgemm_ && fits_int) {
      const int m = int(nb), n = int(mb), k = int(D);
      const double one = 1.0, zero = 0.0;
      dgemm_("T", "N", &m, &n, &k, &one, y, &k, x, &k, &zero, c, &m);
      return;
    }
  }
  // Portable fallback: dot products with independent accumulators so the compiler can vectorise.
  for (int64_t i = 0; i < mb; ++i) {
    const T* xi = x + i * D;
    for (int64_t j = 0; j < nb; ++j) {
      const T* yj = y + j * D;
      T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t k = 0;
      for (; k + 8 <= D; k += 8)
        for (int u = 0; u < 8; ++u) acc[u] += xi[k + u] * yj[k + u];
      T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; k < D; ++k) s += xi[k] * yj[k];
      c[i * nb + j] = s;
    }
  }
}

// While a worker thread runs its own GEMMs inside at::parallel_for, MKL must not start threads of its
// own (2 cores, 2 workers: nested threads only oversubscribe).
struct SingleThreadedBlas {
  int previous = 0;
  SingleThreadedBlas() {
    if (MKL_Set_Num_Threads_Local) previous = MKL_Set_Num_Threads_Local(1);
  }
  ~SingleThreadedBlas() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous);
  }
};

// Centre `rows` rows of src on mu into dst (working type), with |row|^2 rounded to T and |row|.
// Returns false when a row's sum of squares is not finite.
template <typename scalar_t, typename T>
bool pack_centred(const scalar_t* src, int64_t rows, int64_t D, const T* mu, T* dst, T* sqnorm, double* norm) {
  bool finite = true;
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* s = src + r * D;
    T* d = dst + r * D;
    double acc = 0;
    for (int64_t k = 0; k < D; ++k) {
      const T v = T(s[k]) - mu[k];
      d[k] = v;
      // Values near the float32 maximum can overflow the centring in float; their square is still finite
      // in double. The row's norm then sends it to the direct float64 scan (row_bound is +inf).
      const double dv = std::isfinite(v) ? double(v) : double(s[k]) - double(mu[k]);
      acc += dv * dv;
    }
    finite = finite && std::isfinite(acc);
    sqnorm[r] = T(acc);
    norm[r] = std::sqrt(acc);
  }
  return finite;
}

template <typename scalar_t>
int64_t first_nonfinite_row(const scalar_t* x, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < D; ++k)
      if (!std::isfinite(double(x[r * D + k]))) return r;
  return -1;
}

template <typename scalar_t>
[[noreturn]] void fail_nonfinite(const char* name, const scalar_t* x, int64_t rows, int64_t D) {
  const int64_t r = first_nonfinite_row(x, rows, D);
  TORCH_CHECK(r < 0, "manifpt.project: ", name, " contains NaN or Inf (first at row ", r, ")");
  TORCH_CHECK(false, "manifpt.project: ", name, " has values too large for float64: the sum of the reals or a squared "
              "difference from their mean overflows (values near 1.8e308)");
}

// Which CPU code paths run: the best the CPU has, unless MANIFPT_CPU_ISA narrows it (the tests use
// this to cover every path on one machine). Read per call: it is one getenv.
//   avx512    our AVX-512 GEMM + AVX2 scan (the default where the CPU has AVX-512F)
//   avx2      our AVX2 GEMM + AVX2 scan (the default on AVX2-only CPUs)
//   blas      torch's BLAS sgemm_ + AVX2 scan
//   portable  plain C++ GEMM and scan
enum class Gemm { Avx512, Avx2, Blas, Portable };
struct CpuPath {
  Gemm gemm;
  bool avx2_scan;
};
CpuPath cpu_path() {
  static const bool has512 = detail::cpu_has_avx512f(), has2 = detail::cpu_has_avx2_fma();
  const Gemm best2 = has2 ? Gemm::Avx2 : Gemm::Blas;
  const char* env = std::getenv("MANIFPT_CPU_ISA");
  const std::string want = env ? env : "";
  if (want.empty() || want == "auto" || want == "avx512") return {has512 && has2 ? Gemm::Avx512 : best2, has2};
  if (want == "avx2") return {best2, has2};
  if (want == "blas") return {Gemm::Blas, has2};
  TORCH_CHECK(want == "portable", "MANIFPT_CPU_ISA must be auto, avx512, avx2, blas or portable, got '", want, "'");
  return {Gemm::Portable, false};
}

struct Tiles {
  int64_t m, n;
};

// Tiles sized so that packing the reals is amortised (each packed element feeds hundreds of flops)
// while the GEMM output tile stays cache resident for the scan.
Tiles choose_tiles(int64_t M, int64_t N, int64_t D, int64_t tile_m, int64_t tile_n, int threads) {
  Tiles t{tile_m > 0 ? tile_m : (D <= 256 ? 128 : 256), tile_n > 0 ? tile_n : (D <= 256 ? 512 : 1024)};
  // Few fakes: smaller blocks (multiples of the 8-row register block) so every thread gets one.
  if (tile_m <= 0) t.m = std::min(t.m, std::max<int64_t>(8, (M + 8 * threads - 1) / (8 * threads) * 8));
  t.m = std::max<int64_t>(1, std::min(t.m, std::max<int64_t>(M, 1)));
  t.n = std::max<int64_t>(1, std::min(t.n, N));
  return t;
}

template <typename scalar_t, typename T>
void project_cpu_kernel(const scalar_t* X, const scalar_t* Y, int64_t M, int64_t N, int64_t D, Tiles tiles, scalar_t* A,
                        int64_t* I, float* dist) {
  const int threads = std::max(1, at::get_num_threads());

  // 1. Mean of the reals, per thread in float64, then reduced.
  std::vector<double> partial(size_t(threads) * D, 0.0);
  at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t r0 = N * t / threads, r1 = N * (t + 1) / threads;
      double* acc = partial.data() + t * D;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t k = 0; k < D; ++k) acc[k] += double(Y[r * D + k]);
    }
  });
  std::vector<T> mu(D);
  for (int64_t k = 0; k < D; ++k) {
    double s = 0;
    for (int t = 0; t < threads; ++t) s += partial[size_t(t) * D + k];
    if (!std::isfinite(s)) fail_nonfinite("reals", Y, N, D);
    mu[k] = T(s / double(N));
  }
  if (M == 0) return;

  // 2. Centred fakes. When the artifact has the working type it is the scratch (overwritten in 4).
  std::vector<T> xc_own;
  T* xc;
  if constexpr (std::is_same_v<scalar_t, T>) {
    xc = A;
  } else {
    xc_own.resize(size_t(M) * D);
    xc = xc_own.data();
  }
  std::vector<T> xn(M);
  std::vector<double> xnorm(M);
  std::atomic<bool> fakes_finite{true};
  at::parallel_for(0, M, std::max<int64_t>(1, 65536 / D), [&](int64_t b, int64_t e) {
    if (!pack_centred(X + b * D, e - b, D, mu.data(), xc + b * D, xn.data() + b, xnorm.data() + b)) fakes_finite = false;
  });
  if (!fakes_finite) fail_nonfinite("fakes", X, M, D);

  // 3. Candidate search. Enough fake blocks for every thread: reals tiles in sequence, each packed
  //    once and shared, blocks of fakes in parallel (one lane of state). Few fakes: the reals are
  //    split into contiguous ranges, one per thread, each with its own lane of state, merged in 4.
  constexpr double u = std::numeric_limits<T>::epsilon() / 2;
  const double g = expansion_error_coeff(D, u);
  // Absolute slack for underflow (flush-to-zero may drop up to FLT_MIN per product).
  const double tiny = double(3 * D + 8) * double(std::numeric_limits<T>::min());
  // +inf when the expansion may overflow in T (|x.y| <= (|x| + |y|)^2 bounds every partial sum):
  // the scan then hands the row to the direct float64 scan.
  auto row_bound = [&](int64_t i, double ymax) -> T {
    const double s = (xnorm[i] + ymax) * (xnorm[i] + ymax);
    if (!(s <= double(std::numeric_limits<T>::max()) / 4)) return std::numeric_limits<T>::infinity();
    return T(g * s + tiny);
  };
  const int64_t nblocks = (M + tiles.m - 1) / tiles.m;
  const int64_t ntiles = (N + tiles.n - 1) / tiles.n;
  const int64_t lanes = nblocks >= threads ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, ntiles));
  std::vector<RowState<T>> state(size_t(lanes) * M);
  for (auto& s : state) {
    s.upper = std::numeric_limits<T>::infinity();
    s.count = 0;
  }
  const bool infinite_bound = !std::isfinite(g);  // D too large for the bound: direct scan only

  // One packed tile of reals: centred, |y|^2 per real, and the largest |y| (for the bound). Laid out
  // row-major for BLAS / portable, or in k-major panels of 32 for our AVX-512/AVX2 GEMMs (float only).
  const CpuPath path = cpu_path();
  const bool use_panels = std::is_same_v<T, float> && (path.gemm == Gemm::Avx512 || path.gemm == Gemm::Avx2);
  const int64_t npanels = (tiles.n + detail::kPanel - 1) / detail::kPanel;
  const int64_t ldc = use_panels ? npanels * detail::kPanel : tiles.n;
  struct TileBuf {
    std::vector<T> y, yn;
    std::vector<double> ynorm;
  };
  auto make_tile = [&]() {
    return TileBuf{std::vector<T>(size_t(use_panels ? npanels * detail::kPanel : tiles.n) * D), std::vector<T>(tiles.n),
                   std::vector<double>(tiles.n)};
  };
  // Packs rows [r0, r1) of the tile starting at real j0; r0, r1 are multiples of kPanel (or r1 = nb)
  // so that threads packing different row ranges never share a panel's cache lines.
  auto pack_rows = [&](TileBuf& tb, int64_t j0, int64_t nb, int64_t r0, int64_t r1) {
    if (!use_panels) {
      r1 = std::min(r1, nb);
      if (r1 <= r0) return;
      pack_centred(Y + (j0 + r0) * D, r1 - r0, D, mu.data(), tb.y.data() + r0 * D, tb.yn.data() + r0, tb.ynorm.data() + r0);
      return;
    }
    std::vector<T> row(D);
    for (int64_t r = r0; r < std::min(r1, npanels * detail::kPanel); ++r) {
      T* panel = tb.y.data() + (r / detail::kPanel) * D * detail::kPanel + r % detail::kPanel;
      if (r >= nb) {  // zero padding of the last panel
        for (int64_t k = 0; k < D; ++k) panel[k * detail::kPanel] = T(0);
        continue;
      }
      pack_centred(Y + (j0 + r) * D, 1, D, mu.data(), row.data(), tb.yn.data() + r, tb.ynorm.data() + r);
      for (int64_t k = 0; k < D; ++k) panel[k * detail::kPanel] = row[k];
    }
  };
  auto search_tile = [&](const TileBuf& tb, double ymax, int64_t j0, int64_t nb, int64_t blk_begin, int64_t blk_end,
                         RowState<T>* lane_state, T* cbuf) {
    for (int64_t blk = blk_begin; blk < blk_end; ++blk) {
      const int64_t i0 = blk * tiles.m, mb = std::min(tiles.m, M - i0);
      const bool blas = path.gemm != Gemm::Portable;
      if constexpr (std::is_same_v<T, float>) {
        if (path.gemm == Gemm::Avx512)
          detail::cross_gemm_avx512(xc + i0 * D, mb, D, tb.y.data(), nb, cbuf, ldc);
        else if (path.gemm == Gemm::Avx2)
          detail::cross_gemm_avx2(xc + i0 * D, mb, D, tb.y.data(), nb, cbuf, ldc);
        else
          cross_gemm(xc + i0 * D, mb, tb.y.data(), nb, D, cbuf, blas);
      } else {
        cross_gemm(xc + i0 * D, mb, tb.y.data(), nb, D, cbuf, blas);
      }
      const int64_t stride = use_panels ? ldc : nb;
      for (int64_t r = 0; r < mb; ++r) {
        const T* crow = cbuf + r * stride;
        RowState<T>& st = lane_state[i0 + r];
        const T bound = row_bound(i0 + r, ymax);
        if constexpr (std::is_same_v<T, float>) {
          if (path.avx2_scan) {
            detail::scan_row_f32_avx2(crow, tb.yn.data(), nb, xn[i0 + r], bound, j0, st);
            continue;
          }
        }
        detail::scan_row<T>(crow, tb.yn.data(), nb, xn[i0 + r], bound, j0, st);
      }
    }
  };
  auto tile_ymax = [](const TileBuf& tb, int64_t nb) { return *std::max_element(tb.ynorm.begin(), tb.ynorm.begin() + nb); };

  if (!infinite_bound && lanes == 1) {
    TileBuf tb = make_tile();
    std::vector<T> cbufs(size_t(threads) * tiles.m * ldc);
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t j0 = t * tiles.n, nb = std::min(tiles.n, N - j0);
      const int64_t chunks = (nb + detail::kPanel - 1) / detail::kPanel;
      at::parallel_for(0, chunks, std::max<int64_t>(1, 2048 / D), [&](int64_t b, int64_t e) {
        pack_rows(tb, j0, nb, b * detail::kPanel, std::min(nb, e * detail::kPanel));
        if (e == chunks) pack_rows(tb, j0, nb, nb, chunks * detail::kPanel);  // padding
      });
      const double ymax = tile_ymax(tb, nb);
      at::parallel_for(0, nblocks, 1, [&](int64_t b, int64_t e) {
        SingleThreadedBlas single;
        T* cbuf = cbufs.data() + size_t(at::get_thread_num()) * tiles.m * ldc;
        search_tile(tb, ymax, j0, nb, b, e, state.data(), cbuf);
      });
    }
  } else if (!infinite_bound) {
    at::parallel_for(0, lanes, 1, [&](int64_t lb, int64_t le) {
      SingleThreadedBlas single;
      TileBuf tb = make_tile();
      std::vector<T> cbuf(size_t(tiles.m) * ldc);
      for (int64_t lane = lb; lane < le; ++lane) {
        for (int64_t t = ntiles * lane / lanes; t < ntiles * (lane + 1) / lanes; ++t) {
          const int64_t j0 = t * tiles.n, nb = std::min(tiles.n, N - j0);
          pack_rows(tb, j0, nb, 0, npanels * detail::kPanel);
          search_tile(tb, tile_ymax(tb, nb), j0, nb, 0, nblocks, state.data() + size_t(lane) * M, cbuf.data());
        }
      }
    });
  }

  // 4. Exact re-rank and epilogue, one fake per iteration.
  at::parallel_for(0, M, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const scalar_t* x = X + i * D;
      T upper = std::numeric_limits<T>::infinity();
      bool scan_all = infinite_bound;
      int64_t live = 0;
      for (int64_t l = 0; l < lanes && !scan_all; ++l) {
        const RowState<T>& st = state[size_t(l) * M + i];
        if (st.count == detail::kOverflow) scan_all = true;
        upper = std::min(upper, st.upper);
        live += std::max(st.count, 0);
      }
      // No candidate at all can only come from non-finite approximate distances (overflowing
      // squares in the working type): the direct form in float64 still ranks those rows.
      scan_all = scan_all || live == 0;
      double best = std::numeric_limits<double>::infinity();
      int64_t best_j = -1;
      if (scan_all) {
        for (int64_t j = 0; j < N; ++j) merge_min(best, best_j, direct_sqdist(x, Y + j * D, D), j);
      } else {
        for (int64_t l = 0; l < lanes; ++l) {
          const RowState<T>& st = state[size_t(l) * M + i];
          for (int32_t k = 0; k < st.count; ++k)
            if (st.cand[k].lower <= upper)
              merge_min(best, best_j, direct_sqdist(x, Y + st.cand[k].index * D, D), st.cand[k].index);
        }
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

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cpu(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                           int64_t tile_n) {
  check_project_inputs(fakes, reals);
  TORCH_CHECK(fakes.device().is_cpu(), "manifpt.project (CPU kernel): fakes must be on the CPU, got ", fakes.device());
  TORCH_CHECK(tile_m >= 0 && tile_n >= 0, "manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got ", tile_m,
              " and ", tile_n);
  const int64_t M = fakes.size(0), N = reals.size(0);
  const int64_t D = reals.numel() / N;
  // Non-contiguous inputs are made contiguous once; the kernel streams rows.
  const at::Tensor x = fakes.contiguous(), y = reals.contiguous();
  at::Tensor artifact = at::empty(fakes.sizes(), fakes.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor index = at::empty({M}, fakes.options().dtype(at::kLong));
  at::Tensor distance = at::empty({M}, fakes.options().dtype(at::kFloat));
  const Tiles tiles = choose_tiles(M, N, D, tile_m, tile_n, std::max(1, at::get_num_threads()));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_project_cpu", [&] {
    using T = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    project_cpu_kernel<scalar_t, T>(x.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), M, N, D, tiles,
                                    artifact.mutable_data_ptr<scalar_t>(), index.mutable_data_ptr<int64_t>(),
                                    distance.mutable_data_ptr<float>());
  });
  return {artifact, index, distance};
}

}  // namespace manifpt

TORCH_LIBRARY(manifpt, m) {
  m.def(
      "project(Tensor fakes, Tensor reals, int tile_m=0, int tile_n=0) -> (Tensor artifact, Tensor index, Tensor distance)");
}

TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("project", &manifpt::project_cpu); }
