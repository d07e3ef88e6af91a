// manifpt::project and manifpt::project_precision, CUDA backend: the kernels (cuda/mma.cuh, the fast
// tensor-core variant; project_kernels.cuh, the direct reference variant) launched for real behind
// the host launcher they share with the emulated op (project_launch.h, project_emulated.cpp).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/project/project_launch.h"

namespace manifpt::cuda {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                            int64_t tile_n) {
  TORCH_CHECK(tile_m >= 0 && tile_n >= 0, "manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got ", tile_m, " and ",
              tile_n);
  return project_cuda_impl<CudaBackend>(fakes, reals, "exact", "auto", 0);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_precision_cuda(const at::Tensor& fakes, const at::Tensor& reals,
                                                                      c10::string_view precision, c10::string_view variant, int64_t splits) {
  return project_cuda_impl<CudaBackend>(fakes, reals, std::string_view(precision.data(), precision.size()),
                                        std::string_view(variant.data(), variant.size()), splits);
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_IMPL(manifpt, CUDA, m) {
  m.impl("project", &manifpt::cuda::project_cuda);
  m.impl("project_precision", &manifpt::cuda::project_precision_cuda);
}
