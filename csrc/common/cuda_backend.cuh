#pragma once
// The real launch behind the host launchers (ops/*/..._launch.h), for nvcc translation units. The
// emulated twin, with the same interface, is testing/emulated_backend.h.
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "common/cuda_utils.cuh"
#include "common/device.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

struct CudaBackend {
  static void check_device(const char* op, const char* arg, const at::Tensor& t) {
    TORCH_CHECK(t.is_cuda(), op, " (CUDA kernel): ", arg, " must be on a CUDA device, got ", t.device());
  }
  struct Guard {
    explicit Guard(const at::Tensor& t) : guard(t.device()) {}
    c10::cuda::CUDAGuard guard;
  };
  // On the current stream; C10_CUDA_KERNEL_LAUNCH_CHECK turns a refused launch into an error that
  // names CUDA's reason ("invalid configuration argument", "invalid argument", ...).
  template <class... P, class... A>
  static void launch(void (*kernel)(P...), const LaunchShape& s, A&&... args) {
    kernel<<<s.grid, s.block, s.dynamic_smem, c10::cuda::getCurrentCUDAStream()>>>(std::forward<A>(args)...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes).
  template <class... P>
  static void set_max_dynamic_smem(void (*kernel)(P...), std::size_t /*static_smem*/, std::size_t bytes) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
  }
  // The limits a launch is checked against, as the emulation's DeviceLimits lists them.
  static std::vector<int64_t> limits(const at::Tensor& t) {
    const int dev = t.get_device();
    auto attr = [dev](cudaDeviceAttr a) {
      int v = 0;
      C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, a, dev));
      return static_cast<int64_t>(v);
    };
    return {attr(cudaDevAttrMaxThreadsPerBlock),     attr(cudaDevAttrMaxBlockDimX),          attr(cudaDevAttrMaxBlockDimY),
            attr(cudaDevAttrMaxBlockDimZ),           attr(cudaDevAttrMaxGridDimX),           attr(cudaDevAttrMaxGridDimY),
            attr(cudaDevAttrMaxGridDimZ),            attr(cudaDevAttrMaxSharedMemoryPerBlock), attr(cudaDevAttrMaxSharedMemoryPerBlockOptin),
            attr(cudaDevAttrWarpSize)};
  }
};

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
