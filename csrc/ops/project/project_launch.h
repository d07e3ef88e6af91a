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

#include <cstdint>
#include <tuple>
#include <utility>
#include <type_traits>

#include "common/checks.h"
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
  // One device-wide reduction each; on CUDA the host sync is the price of a clear error instead of NaNs.
  TORCH_CHECK(at::isfinite(reals).all().item<bool>(), "manifpt.project: reals contains NaN or Inf");
  TORCH_CHECK(M == 0 || at::isfinite(fakes).all().item<bool>(), "manifpt.project: fakes contains NaN or Inf");
  at::Tensor artifact = at::empty(fakes.sizes(), fakes.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor index = at::empty({M}, fakes.options().dtype(at::kLong));
  at::Tensor distance = at::empty({M}, fakes.options().dtype(at::kFloat));
  if (M == 0) return {artifact, index, distance};
  const std::pair<at::Tensor, int64_t> xr = rows_of(fakes, D), yr = rows_of(reals, D);
  const at::Tensor &x = xr.first, &y = yr.first;
  const int64_t ldx = xr.second, ldy = yr.second;
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

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
