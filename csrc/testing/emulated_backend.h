#pragma once
// The emulated launch behind the host launchers (ops/*/..._launch.h): the same interface as
// common/cuda_backend.cuh, for CPU tensors, running the kernel under testing/cuda_emu.h. Include it
// after every other ATen/torch header of the translation unit.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/device.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

struct EmulatedBackend {
  static void check_device(const char* op, const char* arg, const at::Tensor& t) {
    TORCH_CHECK(t.device().is_cpu(), op, " (emulated CUDA kernel): ", arg, " must be a CPU tensor, got ", t.device());
  }
  struct Guard {
    explicit Guard(const at::Tensor&) {}
  };
  // Blocks run on torch's intra-op thread count of OS threads. Errors come back as c10::Error
  // (RuntimeError in Python) with the message a real launch gives, e.g. "CUDA error: invalid
  // configuration argument ...".
  template <class... P, class... A>
  static void launch(void (*kernel)(P...), const LaunchShape& s, A&&... args) {
    const emu::LaunchConfig cfg{s.grid, s.block, s.dynamic_smem, s.static_smem, std::max(1, at::get_num_threads())};
    try {
      emu::launch(cfg, kernel, std::forward<A>(args)...);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, e.what());
    }
  }
  template <class... P>
  static void set_max_dynamic_smem(void (*kernel)(P...), std::size_t static_smem, std::size_t bytes) {
    try {
      emu::set_max_dynamic_shared_memory(kernel, static_smem, bytes);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, e.what());
    }
  }
  static std::vector<int64_t> limits(const at::Tensor&) {
    const emu::DeviceLimits& l = emu::device_limits();
    return {l.max_threads_per_block, l.max_block.x, l.max_block.y,        l.max_block.z,
            l.max_grid.x,            l.max_grid.y,  l.max_grid.z,         static_cast<int64_t>(l.shared_per_block),
            static_cast<int64_t>(l.shared_per_block_optin), l.warp_size};
  }
};

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
