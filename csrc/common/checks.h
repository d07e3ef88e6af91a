#pragma once
// Input checks shared by every backend of every op. Messages name the argument and say what was
// expected and what was given, because these are what a user sees first when a call goes wrong.
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace manifpt {

inline bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// fakes (M, *S) and reals (N, *S): same trailing shape, device and floating dtype.
inline void check_project_inputs(const at::Tensor& fakes, const at::Tensor& reals) {
  TORCH_CHECK(fakes.dim() >= 1, "manifpt.project: fakes must have at least 1 dimension (M, *S), got a 0-d tensor");
  TORCH_CHECK(reals.dim() >= 1, "manifpt.project: reals must have at least 1 dimension (N, *S), got a 0-d tensor");
  TORCH_CHECK(is_supported_float(fakes.scalar_type()),
              "manifpt.project: fakes must be float32, float64, float16 or bfloat16, got ", fakes.scalar_type());
  TORCH_CHECK(is_supported_float(reals.scalar_type()),
              "manifpt.project: reals must be float32, float64, float16 or bfloat16, got ", reals.scalar_type());
  TORCH_CHECK(fakes.scalar_type() == reals.scalar_type(), "manifpt.project: fakes and reals must have the same dtype, got fakes ",
              fakes.scalar_type(), " and reals ", reals.scalar_type());
  TORCH_CHECK(fakes.device() == reals.device(), "manifpt.project: fakes and reals must be on the same device, got fakes on ",
              fakes.device(), " and reals on ", reals.device());
  TORCH_CHECK(fakes.sizes().slice(1) == reals.sizes().slice(1),
              "manifpt.project: fakes (M, *S) and reals (N, *S) must share the trailing shape S, got fakes ", fakes.sizes(),
              " and reals ", reals.sizes());
  TORCH_CHECK(reals.size(0) > 0, "manifpt.project: reals is empty (N = 0): there is no real sample to project onto");
  TORCH_CHECK(fakes.numel() == 0 || fakes.numel() / fakes.size(0) > 0,
              "manifpt.project: the trailing shape S has no elements (D = 0), got fakes ", fakes.sizes());
}

}  // namespace manifpt
