// manifpt::project on the CPU: input checks, dtype dispatch and the driver of the stages (cpu/stages.h).
//   1. mean of the reals in float64 (one pass; its finiteness is also the NaN/Inf check of reals);
//   2. fakes centred on that mean, in the working type T (float, or double for float64 inputs), with
//      |x|^2 and |x| per fake (the sum of squares in float64 is the NaN/Inf check of fakes), packed
//      for the GEMM the path uses (cpu/pack.h);
//   3. candidate search (cpu/candidates.cpp);
//   4. exact re-rank and artifact (cpu/rerank.cpp).
// The schema is registered in schema.cpp; the CUDA kernel in project_cuda.cu.
#include "ops/project/project.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "ops/project/cpu/blocking.h"
#include "ops/project/cpu/isa.h"
#include "ops/project/cpu/pack.h"
#include "ops/project/cpu/stages.h"

namespace manifpt {
namespace {

using namespace detail;

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

template <typename scalar_t, typename T>
void project_cpu_kernel(const scalar_t* X, const scalar_t* Y, int64_t M, int64_t N, int64_t D, int64_t tile_m,
                        int64_t tile_n, scalar_t* A, int64_t* I, float* dist) {
  const int threads = std::max(1, at::get_num_threads());
  const CpuPath path = cpu_path();
  const Blocking blk = choose_blocking(M, N, D, tile_m, tile_n, threads, path, std::is_same_v<T, float>);

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
  bool micro = false;
  if constexpr (std::is_same_v<T, float>) micro = path.panels();
  if (micro) {
    if constexpr (std::is_same_v<T, float>) {
      const int64_t groups = (M + blk.mr - 1) / blk.mr;
      at::parallel_for(0, groups, std::max<int64_t>(1, 65536 / (D * blk.mr)), [&](int64_t b, int64_t e) {
        if (!pack_fakes_micro(X, M, b * blk.mr, std::min(M, e * blk.mr), D, blk.mr, blk.kc, mu.data(), xc, xn.data(),
                              xnorm.data(), path.avx2))
          fakes_finite = false;
      });
    }
  } else {
    at::parallel_for(0, M, std::max<int64_t>(1, 65536 / D), [&](int64_t b, int64_t e) {
      if (!pack_centred(X + b * D, e - b, D, mu.data(), xc + b * D, xn.data() + b, xnorm.data() + b)) fakes_finite = false;
    });
  }
  if (!fakes_finite) fail_nonfinite("fakes", X, M, D);

  // 3. Candidate search, 4. exact re-rank and artifact.
  const CandidateLists<T> cands = find_candidates<scalar_t, T>(Y, M, N, D, mu.data(), CentredFakes<T>{xc, xn.data(), xnorm.data()}, blk, path);
  rerank_and_artifact<scalar_t, T>(X, Y, M, N, D, cands, A, I, dist);
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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_project_cpu", [&] {
    using T = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    project_cpu_kernel<scalar_t, T>(x.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), M, N, D, tile_m, tile_n,
                                    artifact.mutable_data_ptr<scalar_t>(), index.mutable_data_ptr<int64_t>(),
                                    distance.mutable_data_ptr<float>());
  });
  return {artifact, index, distance};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cpu_pack_kmajor(const at::Tensor& rows, const at::Tensor& mu, int64_t width,
                                                               bool avx2) {
  TORCH_CHECK(rows.dim() == 2 && rows.scalar_type() == at::kFloat && rows.device().is_cpu(),
              "manifpt._cpu_pack_kmajor: rows must be a 2-D float32 CPU tensor, got ", rows.sizes(), " ", rows.scalar_type());
  const int64_t n = rows.size(0), D = rows.size(1);
  TORCH_CHECK(D >= 1, "manifpt._cpu_pack_kmajor: rows must have at least one column");
  TORCH_CHECK(mu.dim() == 1 && mu.size(0) == D && mu.scalar_type() == at::kFloat && mu.device().is_cpu(),
              "manifpt._cpu_pack_kmajor: mu must be a float32 CPU tensor of ", D, " values, got ", mu.sizes());
  TORCH_CHECK(width >= std::max<int64_t>(n, 1) && width <= detail::kPanel,
              "manifpt._cpu_pack_kmajor: width must be in [max(rows, 1), ", detail::kPanel, "], got ", width);
  TORCH_CHECK(!avx2 || cpu_has_avx2_fma(), "manifpt._cpu_pack_kmajor: avx2=True on a CPU without AVX2/FMA");
  const at::Tensor r = rows.contiguous(), m = mu.contiguous();
  at::Tensor packed = at::empty({D, width}, rows.options());
  at::Tensor sqnorm = at::empty({n}, rows.options()), norm = at::empty({n}, rows.options().dtype(at::kDouble));
  pack_kmajor(r.const_data_ptr<float>(), n, width, D, m.const_data_ptr<float>(), packed.mutable_data_ptr<float>(),
              sqnorm.mutable_data_ptr<float>(), norm.mutable_data_ptr<double>(), avx2);
  return {packed, sqnorm, norm};
}

std::string cpu_info(int64_t M, int64_t N, int64_t D) {
  TORCH_CHECK(M >= 1 && N >= 1 && D >= 1, "manifpt._cpu_info: M, N and D must be >= 1, got ", M, ", ", N, ", ", D);
  const CpuPath path = cpu_path();
  const CacheSizes& cs = cache_sizes();
  const Blocking b = choose_blocking(M, N, D, 0, 0, std::max(1, at::get_num_threads()), path, true);
  std::ostringstream s;
  s << "gemm=" << path.gemm_name() << " scan=" << (path.avx2 ? "avx2" : "portable") << " l1d=" << cs.l1d
    << " l2=" << cs.l2 << " l3=" << cs.l3 << " caches_from_os=" << int(cs.from_os) << " mr=" << b.mr << " kc=" << b.kc
    << " mc=" << b.mc << " nc=" << b.nc << " prefetch=" << int(b.prefetch) << " threads=" << at::get_num_threads() << " kernels=";
  for (size_t i = 0; i < panel_gemms().size(); ++i) s << (i ? "," : "") << panel_gemms()[i]->name;
  return s.str();
}

}  // namespace manifpt
