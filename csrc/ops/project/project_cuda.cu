// manifpt::project, CUDA backend: the direct kernel (project_kernels.cuh) launched for real behind
// the host launcher it shares with the emulated op (project_launch.h, project_emulated.cpp).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/project/project_launch.h"

namespace manifpt::cuda {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                            int64_t tile_n) {
  return project_direct<CudaBackend>(fakes, reals, tile_m, tile_n);
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_IMPL(manifpt, CUDA, m) { m.impl("project", &manifpt::cuda::project_cuda); }
