// manifpt::_project_cuda_emulated: the CUDA op's host launcher and device code (project_launch.h,
// project_kernels.cuh), compiled by the host compiler and run on CPU threads by the CUDA emulation
// (testing/cuda_emu.h). Same schema as manifpt::project, registered for CPU tensors. It exists so
// that the CUDA kernel executes, and is checked, on every test run, also without a GPU; it is not a
// CPU backend (that is project.cpp, orders of magnitude faster).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/project/project_launch.h"
#include "testing/emulated_backend.h"

namespace manifpt::cuda {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda_emulated(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                                     int64_t tile_n) {
  return project_direct<EmulatedBackend>(fakes, reals, tile_m, tile_n);
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_FRAGMENT(manifpt, m) {
  m.def(
      "_project_cuda_emulated(Tensor fakes, Tensor reals, int tile_m=0, int tile_n=0) -> (Tensor artifact, Tensor index, Tensor "
      "distance)");
}
TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("_project_cuda_emulated", &manifpt::cuda::project_cuda_emulated); }
