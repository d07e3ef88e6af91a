#pragma once
// Host side of manifpt::project on CUDA, shared by the real op (project_cuda.cu, nvcc) and the
// emulated one (project_emulated.cpp, host compiler + testing/cuda_emu.h): input checks, which
// inputs are read in place, the NaN/Inf check, outputs, dtype dispatch, grid and shared memory.
// Only the launch itself differs, through a Backend (common/cuda_backend.cuh or
// testing/emulated_backend.h).
//
// Kept free of <ATen/ATen.h>: in an nvcc translation unit it costs ~15 s of compile time.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/all.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <utility>
#include <tuple>
#include <utility>
#include <type_traits>

#include "common/checks.h"
#include "ops/project/cuda/mma.cuh"
#include "ops/project/project_kernels.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

// The kernels see c10's half types as the device's (same 2-byte layout, conversions by intrinsics).
template <typename T>
struct DeviceScalar {
  using type = T;
};
template <>
struct DeviceScalar<c10::Half> {
  using type = __half;
};
template <>
struct DeviceScalar<c10::BFloat16> {
  using type = __nv_bfloat16;
};
static_assert(sizeof(__half) == sizeof(c10::Half) && sizeof(__nv_bfloat16) == sizeof(c10::BFloat16));

// A (R, *S) tensor as R rows of D elements: read in place when every row is contiguous inside (any
// row stride, also 0 for expanded rows, or the huge strides of a view into a large buffer), else
// copied once. Returns the tensor to read and its row stride in elements.
inline std::pair<at::Tensor, int64_t> rows_of(const at::Tensor& t, int64_t D) {
  int64_t expected = 1;
  bool inner_contiguous = true;
  for (int64_t d = t.dim() - 1; d >= 1; --d) {
    if (t.size(d) != 1 && t.stride(d) != expected) inner_contiguous = false;
    expected *= t.size(d);
  }
  if (inner_contiguous && t.size(0) > 0) return {t, t.size(0) == 1 ? D : t.stride(0)};
  return {t.contiguous(), D};
}

// What every variant does before its kernel: refuse NaN/Inf (one device-wide reduction each; on CUDA
// the host sync is the price of a clear error instead of NaNs), allocate the outputs, and take the rows
// the kernels read (rows_of). With no fakes only the (empty) outputs are made.
struct Prepared {
  at::Tensor artifact, index, distance, x, y;
  int64_t ldx = 0, ldy = 0;
};
inline Prepared prepare(const at::Tensor& fakes, const at::Tensor& reals, int64_t D) {
  const int64_t M = fakes.size(0);
  TORCH_CHECK(at::isfinite(reals).all().item<bool>(), "manifpt.project: reals contains NaN or Inf");
  TORCH_CHECK(M == 0 || at::isfinite(fakes).all().item<bool>(), "manifpt.project: fakes contains NaN or Inf");
  Prepared io;
  io.artifact = at::empty(fakes.sizes(), fakes.options().memory_format(at::MemoryFormat::Contiguous));
  io.index = at::empty({M}, fakes.options().dtype(at::kLong));
  io.distance = at::empty({M}, fakes.options().dtype(at::kFloat));
  if (M == 0) return io;
  std::tie(io.x, io.ldx) = rows_of(fakes, D);
  std::tie(io.y, io.ldy) = rows_of(reals, D);
  return io;
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> project_direct(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                              int64_t tile_n) {
  check_project_inputs(fakes, reals);
  Backend::check_device("manifpt.project", "fakes", fakes);
  TORCH_CHECK(tile_m >= 0 && tile_n >= 0, "manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got ", tile_m,
              " and ", tile_n);
  const typename Backend::Guard guard(fakes);
  const int64_t M = fakes.size(0), N = reals.size(0);
  const int64_t D = reals.numel() / N;
  Prepared io = prepare(fakes, reals, D);
  if (M == 0) return {io.artifact, io.index, io.distance};
  const at::Tensor &x = io.x, &y = io.y, &artifact = io.artifact, &index = io.index, &distance = io.distance;
  const int64_t ldx = io.ldx, ldy = io.ldy;
  const int64_t blocks = (M + kBM - 1) / kBM;
  TORCH_CHECK(blocks <= 2147483647, "manifpt.project: M = ", M, " fakes need ", blocks,
              " blocks of the CUDA kernel, more than a grid holds (2^31 - 1)");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_project_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    using dev_t = typename DeviceScalar<scalar_t>::type;
    const LaunchShape shape{dim3(static_cast<unsigned>(blocks)), dim3(kTX, kTY), 0, project_direct_static_smem<acc_t>()};
    Backend::launch(&project_direct_kernel<dev_t, acc_t>, shape, reinterpret_cast<const dev_t*>(x.template const_data_ptr<scalar_t>()),
                    ldx, reinterpret_cast<const dev_t*>(y.template const_data_ptr<scalar_t>()), ldy, M, N, D,
                    reinterpret_cast<dev_t*>(artifact.template mutable_data_ptr<scalar_t>()),
                    index.template mutable_data_ptr<int64_t>(), distance.template mutable_data_ptr<float>());
  });
  // The kernel ranks in float for float32/float16/bfloat16 inputs: where every square overflows it
  // (values above ~1e19) the distances are all inf and the index says nothing. An error instead of
  // that answer (the CPU op ranks such rows in float64).
  TORCH_CHECK(x.scalar_type() == at::kDouble || at::isfinite(distance).all().item<bool>(),
              "manifpt.project (CUDA kernel): the squared distances of some fakes overflow float32 (values too large, "
              "above ~1e19); project them on the CPU or as float64");
  return {artifact, index, distance};
}

// ---- the fast variant (ops/project/cuda/mma.cuh) and the choice between the two -----------------------

inline Precision parse_precision(std::string_view p) {
  if (p == "exact") return Precision::Exact;
  if (p == "tf32") return Precision::TF32;
  if (p == "bf16") return Precision::BF16;
  TORCH_CHECK(false, "manifpt.project: precision must be 'exact', 'tf32' or 'bf16', got '", std::string(p), "'");
}

enum class Variant { Direct, Mma };

// The kernel variant for a call, chosen in one place (as pytorch3d's knn.cu chooses its versions):
// "direct" is the first, CUDA-core kernel in the direct form (the reference the fast one is tested
// against; ranks in float32 for float32/half/bfloat16); "mma" and "auto" the tensor-core candidates
// with the float64 re-rank. The precision only applies to "mma".
inline Variant choose_variant(std::string_view v, Precision /*p*/, int64_t /*M*/, int64_t /*N*/, int64_t /*D*/) {
  if (v == "auto" || v == "mma") return Variant::Mma;
  if (v == "direct") return Variant::Direct;
  TORCH_CHECK(false, "manifpt.project: variant must be 'auto', 'mma' or 'direct', got '", std::string(v), "'");
}

// Blocks that keep an H100/H200 busy (132 SMs, two blocks each): with fewer blocks of fakes than
// this, the reals are split across blockIdx.y and a merge kernel reduces the partial minima.
constexpr int64_t kMmaTargetBlocks = 264;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class Backend, Precision P, typename dev_t>
void project_mma_run(const dev_t* X, int64_t ldx, const dev_t* Y, int64_t ldy, int64_t M, int64_t N, int64_t D, int64_t splits,
                     const at::Tensor& like, dev_t* A, int64_t* I, float* dist) {
  using acc_t = typename MmaTraits<P>::acc_t;
  const auto dopt = like.options().dtype(at::kDouble);
  const auto aopt = like.options().dtype(std::is_same_v<acc_t, double> ? at::kDouble : at::kFloat);
  // Mean of the reals: column sums of row chunks (enough blocks for the card), then their sum.
  const int64_t col_blocks = ceil_div(D, kColThreads);
  const int64_t rows_per_chunk = ceil_div(N, std::clamp<int64_t>(ceil_div(1024, col_blocks), 1, std::min<int64_t>(N, 65535)));
  const int64_t chunks = ceil_div(N, rows_per_chunk);
  TORCH_CHECK(col_blocks <= 2147483647, "manifpt.project: D = ", D, " is too large for the CUDA kernel's grid");
  at::Tensor partial = at::empty({chunks, D}, dopt), mu = at::empty({D}, dopt);
  Backend::launch(&column_sum_kernel<dev_t>, LaunchShape{dim3(unsigned(col_blocks), unsigned(chunks)), dim3(kColThreads)}, Y, ldy, N, D,
                  rows_per_chunk, partial.mutable_data_ptr<double>());
  Backend::launch(&mean_finish_kernel, LaunchShape{dim3(unsigned(col_blocks)), dim3(kColThreads)},
                  static_cast<const double*>(partial.const_data_ptr<double>()), chunks, N, D, mu.mutable_data_ptr<double>());
  // Norms of the centred, rounded operands.
  at::Tensor xsq = at::empty({M}, aopt), xn = at::empty({M}, aopt), ysq = at::empty({N}, aopt), yn = at::empty({N}, aopt);
  const int64_t rows_per_block = kMmaThreads / 32;
  TORCH_CHECK(ceil_div(std::max(M, N), rows_per_block) <= 2147483647, "manifpt.project: too many rows for the CUDA kernel's grid");
  const double* mup = mu.const_data_ptr<double>();
  Backend::launch(&row_norms_kernel<P, dev_t>, LaunchShape{dim3(unsigned(ceil_div(M, rows_per_block))), dim3(kMmaThreads)}, X, ldx, M, D,
                  mup, xsq.mutable_data_ptr<acc_t>(), xn.mutable_data_ptr<acc_t>());
  Backend::launch(&row_norms_kernel<P, dev_t>, LaunchShape{dim3(unsigned(ceil_div(N, rows_per_block))), dim3(kMmaThreads)}, Y, ldy, N, D,
                  mup, ysq.mutable_data_ptr<acc_t>(), yn.mutable_data_ptr<acc_t>());
  // Split of the reals over blockIdx.y.
  const int64_t mblocks = ceil_div(M, kMmaBM), ntiles = ceil_div(N, kMmaBN);
  TORCH_CHECK(mblocks <= 2147483647, "manifpt.project: M = ", M, " fakes need ", mblocks,
              " blocks of the CUDA kernel, more than a grid holds (2^31 - 1)");
  int64_t S = splits > 0 ? splits : ceil_div(kMmaTargetBlocks, mblocks);
  S = std::clamp<int64_t>(S, 1, std::min<int64_t>(ntiles, 65535));
  const int64_t chunk = ceil_div(ntiles, S) * kMmaBN;
  S = ceil_div(N, chunk);
  at::Tensor part_d = at::empty({S > 1 ? S * M : 0}, dopt), part_i = at::empty({S > 1 ? S * M : 0}, dopt.dtype(at::kLong));
  const MmaBound b = mma_bound<P>(D);
  const std::size_t smem = MmaSmem<P>::bytes + kMmaSmemAlign;
  auto* kernel = &project_mma_kernel<P, dev_t>;
  if (smem > 48 * 1024) Backend::set_max_dynamic_smem(kernel, 0, smem);
  Backend::launch(kernel, LaunchShape{dim3(unsigned(mblocks), unsigned(S)), dim3(kMmaThreads), smem, 0}, X, ldx, Y, ldy, M, N, D, mup,
                  static_cast<const acc_t*>(xsq.const_data_ptr<acc_t>()), static_cast<const acc_t*>(xn.const_data_ptr<acc_t>()),
                  static_cast<const acc_t*>(ysq.const_data_ptr<acc_t>()), static_cast<const acc_t*>(yn.const_data_ptr<acc_t>()), b.g, b.e1,
                  b.e0, chunk, A, I, dist, part_d.mutable_data_ptr<double>(), part_i.mutable_data_ptr<int64_t>());
  if (S > 1)
    Backend::launch(&project_merge_kernel<dev_t>, LaunchShape{dim3(unsigned(ceil_div(M, rows_per_block))), dim3(kMmaThreads)}, X, ldx, Y,
                    ldy, M, D, S, static_cast<const double*>(part_d.const_data_ptr<double>()),
                    static_cast<const int64_t*>(part_i.const_data_ptr<int64_t>()), A, I, dist);
}

// manifpt::project on CUDA (and under the emulation): `precision` picks the candidates' tensor-core
// arithmetic, `variant` the kernel (choose_variant), `splits` > 0 forces the number of ranges the
// reals are split into (tests; 0 = automatic). The answer is the exact one for every precision.
template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda_impl(const at::Tensor& fakes, const at::Tensor& reals, std::string_view precision,
                                                                 std::string_view variant, int64_t splits) {
  check_project_inputs(fakes, reals);
  Backend::check_device("manifpt.project", "fakes", fakes);
  const Precision p = parse_precision(precision);
  TORCH_CHECK(splits >= 0, "manifpt.project: splits must be >= 0 (0 = automatic), got ", splits);
  const int64_t M = fakes.size(0), N = reals.size(0);
  const int64_t D = reals.numel() / N;
  if (choose_variant(variant, p, M, N, D) == Variant::Direct) return project_direct<Backend>(fakes, reals, 0, 0);
  const typename Backend::Guard guard(fakes);
  Prepared io = prepare(fakes, reals, D);
  if (M == 0) return {io.artifact, io.index, io.distance};
  const at::Tensor &x = io.x, &y = io.y, &artifact = io.artifact, &index = io.index, &distance = io.distance;
  const int64_t ldx = io.ldx, ldy = io.ldy;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_project_mma", [&] {
    using dev_t = typename DeviceScalar<scalar_t>::type;
    const dev_t* X = reinterpret_cast<const dev_t*>(x.template const_data_ptr<scalar_t>());
    const dev_t* Y = reinterpret_cast<const dev_t*>(y.template const_data_ptr<scalar_t>());
    dev_t* A = reinterpret_cast<dev_t*>(artifact.template mutable_data_ptr<scalar_t>());
    int64_t* I = index.template mutable_data_ptr<int64_t>();
    float* dist = distance.template mutable_data_ptr<float>();
    switch (p) {
      case Precision::Exact: project_mma_run<Backend, Precision::Exact>(X, ldx, Y, ldy, M, N, D, splits, x, A, I, dist); break;
      case Precision::TF32: project_mma_run<Backend, Precision::TF32>(X, ldx, Y, ldy, M, N, D, splits, x, A, I, dist); break;
      case Precision::BF16: project_mma_run<Backend, Precision::BF16>(X, ldx, Y, ldy, M, N, D, splits, x, A, I, dist); break;
    }
  });
  return {artifact, index, distance};
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
