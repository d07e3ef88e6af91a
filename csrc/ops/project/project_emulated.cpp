// manifpt::_project_cuda_emulated: the CUDA op's host launcher and device code (project_launch.h,
// project_kernels.cuh, cuda/mma.cuh), compiled by the host compiler and run on CPU threads by the
// CUDA emulation (testing/cuda_emu.h, testing/wmma_emu.h). Same schema as manifpt::project,
// registered for CPU tensors. It exists so that the CUDA kernels execute, and are checked, on every
// test run, also without a GPU; it is not a CPU backend (that is project.cpp, orders of magnitude
// faster).
//
// Also the schema of manifpt::project_precision (the CUDA op with its precision, variant and split
// arguments; its CUDA kernel is registered by project_cuda.cu) and of its emulated twin, defined in
// every build so that the Python side can register their fake kernels and gradients.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/project/project_launch.h"
#include "testing/emulated_backend.h"

namespace manifpt::cuda {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda_emulated(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                                     int64_t tile_n) {
  TORCH_CHECK(tile_m >= 0 && tile_n >= 0, "manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got ", tile_m, " and ",
              tile_n);
  return project_cuda_impl<EmulatedBackend>(fakes, reals, "exact", "auto", 0);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_precision_emulated(const at::Tensor& fakes, const at::Tensor& reals,
                                                                          c10::string_view precision, c10::string_view variant,
                                                                          int64_t splits) {
  return project_cuda_impl<EmulatedBackend>(fakes, reals, std::string_view(precision.data(), precision.size()),
                                            std::string_view(variant.data(), variant.size()), splits);
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_FRAGMENT(manifpt, m) {
  m.def(
      "_project_cuda_emulated(Tensor fakes, Tensor reals, int tile_m=0, int tile_n=0) -> (Tensor artifact, Tensor index, Tensor "
      "distance)");
  m.def(
      "project_precision(Tensor fakes, Tensor reals, str precision=\"exact\", str variant=\"auto\", int splits=0) -> (Tensor "
      "artifact, Tensor index, Tensor distance)");
  m.def(
      "_project_precision_emulated(Tensor fakes, Tensor reals, str precision=\"exact\", str variant=\"auto\", int splits=0) -> "
      "(Tensor artifact, Tensor index, Tensor distance)");
}
TORCH_LIBRARY_IMPL(manifpt, CPU, m) {
  m.impl("_project_cuda_emulated", &manifpt::cuda::project_cuda_emulated);
  m.impl("_project_precision_emulated", &manifpt::cuda::project_precision_emulated);
}
