// manifpt::row_sqdist(a Tensor[M, *S], b Tensor[M, *S]) -> Tensor[M] float64
//
// Row-wise squared distance sum((a[i] - b[i])^2) in float64, with exactly the arithmetic of the CPU
// projection's re-rank (direct_sqdist.h). manifpt_ext.project_stream and manifpt_ext.distributed use
// it to order candidates from different chunks or ranks whose float32 distances tie, so their merged
// result is the one a single project call would give. CPU only (the CUDA op ranks in float32).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include "common/checks.h"
#include "ops/project/direct_sqdist.h"

namespace manifpt {

at::Tensor row_sqdist_cpu(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() >= 1 && a.sizes() == b.sizes(), "manifpt.row_sqdist: a and b must have the same shape (M, *S), got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(is_supported_float(a.scalar_type()) && a.scalar_type() == b.scalar_type(),
              "manifpt.row_sqdist: a and b must share a float dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "manifpt.row_sqdist: CPU tensors only, got ", a.device(), " and ",
              b.device());
  const int64_t M = a.size(0), D = M ? a.numel() / M : 0;
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  at::Tensor out = at::empty({M}, a.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_row_sqdist", [&] {
    const scalar_t* px = x.const_data_ptr<scalar_t>();
    const scalar_t* py = y.const_data_ptr<scalar_t>();
    double* po = out.mutable_data_ptr<double>();
    at::parallel_for(0, M, 64, [&](int64_t b0, int64_t e0) {
      for (int64_t i = b0; i < e0; ++i) po[i] = direct_sqdist(px + i * D, py + i * D, D);
    });
  });
  return out;
}

}  // namespace manifpt

TORCH_LIBRARY_FRAGMENT(manifpt, m) { m.def("row_sqdist(Tensor a, Tensor b) -> Tensor"); }
TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("row_sqdist", &manifpt::row_sqdist_cpu); }
