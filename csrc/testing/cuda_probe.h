#pragma once
// Host side of manifpt::_cuda_probe (the probe kernels of probe_kernels.cuh), shared by the real
// launch (cuda_probe.cu) and the emulated one (cuda_probe_emulated.cpp) through a Backend.
//
//   _cuda_probe(str kernel, Tensor input, int[] grid, int[] block, int dynamic_smem=0,
//               int max_dynamic_smem=0) -> Tensor
//
// kernel: "index" | "shared" | "warp" | "atomic" | "convert" | "limits"; input gives the device
// (and the data for "warp": int32 cases (K, 5), and "convert": float32 values); grid and block are
// 1 to 3 dimensions (ignored by "warp", "convert" and "limits"); max_dynamic_smem > 0 first raises
// the kernel's dynamic shared memory limit (cudaFuncAttributeMaxDynamicSharedMemorySize).
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "testing/probe_kernels.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

inline dim3 probe_dim3(c10::IntArrayRef v, const char* what) {
  TORCH_CHECK(v.size() >= 1 && v.size() <= 3, "manifpt._cuda_probe: ", what, " takes 1 to 3 dimensions, got ", v.size());
  for (int64_t x : v)
    TORCH_CHECK(x >= 0 && x <= 0xffffffffll, "manifpt._cuda_probe: ", what, " dimensions must fit in 32 bits, got ", x);
  return dim3(static_cast<unsigned>(v[0]), v.size() > 1 ? static_cast<unsigned>(v[1]) : 1u,
              v.size() > 2 ? static_cast<unsigned>(v[2]) : 1u);
}

template <class Backend>
at::Tensor cuda_probe(c10::string_view kernel_name, const at::Tensor& input, c10::IntArrayRef grid_v, c10::IntArrayRef block_v,
                      int64_t dynamic_smem, int64_t max_dynamic_smem) {
  const std::string name(kernel_name);
  Backend::check_device("manifpt._cuda_probe", "input", input);
  const typename Backend::Guard guard(input);
  const auto i64 = input.options().dtype(at::kLong);
  if (name == "limits") return at::tensor(Backend::limits(input), at::kLong);
  TORCH_CHECK(dynamic_smem >= 0 && max_dynamic_smem >= 0, "manifpt._cuda_probe: shared memory sizes must be >= 0");
  const dim3 grid = probe_dim3(grid_v, "grid"), block = probe_dim3(block_v, "block");
  // Sized from the requested grid even when the launch is to be refused: the refusal must come from
  // the launch, not from an allocation.
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z, threads = uint64_t(block.x) * block.y * block.z;
  if (name == "index") {
    const uint64_t rows = blocks * threads;
    TORCH_CHECK(rows <= (uint64_t(1) << 26), "manifpt._cuda_probe: index probe limited to 2^26 threads, got ", rows);
    at::Tensor out = at::full({static_cast<int64_t>(rows), 6}, -1, i64);
    Backend::launch(&probe_index_kernel, LaunchShape{grid, block, 0, 0}, reinterpret_cast<long long*>(out.mutable_data_ptr<int64_t>()));
    return out;
  }
  if (name == "shared") {
    if (max_dynamic_smem > 0) Backend::set_max_dynamic_smem(&probe_shared_kernel, kProbeSharedStatic, static_cast<std::size_t>(max_dynamic_smem));
    TORCH_CHECK(blocks <= (1u << 20), "manifpt._cuda_probe: shared probe limited to 2^20 blocks, got ", blocks);
    at::Tensor out = at::full({static_cast<int64_t>(blocks), 2}, -1, i64);
    Backend::launch(&probe_shared_kernel, LaunchShape{grid, block, static_cast<std::size_t>(dynamic_smem), kProbeSharedStatic},
                    reinterpret_cast<long long*>(out.mutable_data_ptr<int64_t>()), static_cast<int>(dynamic_smem / 4));
    return out;
  }
  if (name == "warp") {
    TORCH_CHECK(input.scalar_type() == at::kInt && input.dim() == 2 && input.size(1) == kProbeCaseWords && input.size(0) > 0,
                "manifpt._cuda_probe: warp cases must be int32 (K, 5), got ", input.scalar_type(), " ", input.sizes());
    const at::Tensor cases = input.contiguous();
    at::Tensor out = at::full({input.size(0), kProbeWarpThreads}, -9, i64);
    Backend::launch(&probe_warp_kernel, LaunchShape{dim3(static_cast<unsigned>(input.size(0))), dim3(kProbeWarpThreads), 0, kProbeWarpStatic},
                    cases.const_data_ptr<int>(), reinterpret_cast<long long*>(out.mutable_data_ptr<int64_t>()));
    return out;
  }
  if (name == "atomic") {
    const int64_t n = static_cast<int64_t>(blocks * threads);
    TORCH_CHECK(n > 0 && n <= (1 << 24), "manifpt._cuda_probe: atomic probe takes 1 to 2^24 threads, got ", n);
    at::Tensor i32 = at::tensor(std::vector<int>{0, 1 << 30, -1, -1}, at::kInt).to(input.device());
    at::Tensor f32 = at::zeros({1}, input.options().dtype(at::kFloat));
    at::Tensor u64 = at::zeros({2}, i64);
    Backend::launch(&probe_atomic_kernel, LaunchShape{grid, block, 0, 0}, i32.mutable_data_ptr<int>(), f32.mutable_data_ptr<float>(),
                    reinterpret_cast<unsigned long long*>(u64.mutable_data_ptr<int64_t>()));
    return at::cat({i32.to(at::kLong), f32.to(at::kLong), u64});
  }
  if (name == "convert") {
    TORCH_CHECK(input.scalar_type() == at::kFloat && input.dim() == 1, "manifpt._cuda_probe: convert takes float32 (n,), got ",
                input.scalar_type(), " ", input.sizes());
    const at::Tensor x = input.contiguous();
    at::Tensor out = at::empty({x.size(0), 4}, input.options().dtype(at::kInt));
    if (x.size(0) == 0) return out;
    Backend::launch(&probe_convert_kernel, LaunchShape{dim3(static_cast<unsigned>(std::min<int64_t>(64, (x.size(0) + 255) / 256))), dim3(256), 0, 0},
                    x.const_data_ptr<float>(), static_cast<long long>(x.size(0)), out.mutable_data_ptr<int>());
    return out;
  }
  TORCH_CHECK(false, "manifpt._cuda_probe: unknown kernel '", name, "' (index, shared, warp, atomic, convert, limits)");
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
