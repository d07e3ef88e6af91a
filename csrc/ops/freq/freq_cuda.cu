// manifpt::freq_spectra on CUDA: the channelwise 2-D FFT embedding of (B, C, H, W) images. One
// batched real-to-complex cuFFT plan (cufftPlanMany over the B*C channels, cached per
// (H, W, batch, device, precision)) computes the half spectra; the fused post-FFT kernel
// (freq_kernels.cuh) writes log1p(|F|), |F| or (Re, Im) of the full fftshifted spectrum straight
// into the (B, C or 2C, H, W) layout manifpt::project reads. Float64 images use D2Z; float16 and
// bfloat16 are converted to float32 first (as manifpt_ext.freq_embed does).
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cufft.h>
#include <torch/library.h>

#include <map>
#include <mutex>
#include <tuple>

#include "common/cuda_backend.cuh"
#include "ops/freq/freq_launch.h"

namespace manifpt::cuda {
namespace {

#define MANIFPT_CUFFT_CHECK(expr)                                                                  \
  do {                                                                                             \
    const cufftResult r_ = (expr);                                                                 \
    TORCH_CHECK(r_ == CUFFT_SUCCESS, "manifpt.freq (cuFFT): ", #expr, " failed with cufftResult ", \
                static_cast<int>(r_));                                                             \
  } while (0)

// Plans are costly to make (and hold a work area on the device): one per shape, device and
// precision, kept for the process. cuFFT plans are not thread-safe, so a call holds the lock while it
// sets the stream and enqueues the transform. At most kMaxPlans are kept (the oldest go first).
using PlanKey = std::tuple<int64_t, int64_t, int64_t, int, bool>;
constexpr std::size_t kMaxPlans = 16;
std::mutex g_plan_mutex;
std::map<PlanKey, std::pair<cufftHandle, uint64_t>> g_plans;
uint64_t g_plan_clock = 0;

cufftHandle plan_for(int64_t H, int64_t W, int64_t batch, int device, bool dbl) {
  const PlanKey key{H, W, batch, device, dbl};
  auto it = g_plans.find(key);
  if (it != g_plans.end()) {
    it->second.second = ++g_plan_clock;
    return it->second.first;
  }
  if (g_plans.size() >= kMaxPlans) {
    auto oldest = g_plans.begin();
    for (auto jt = g_plans.begin(); jt != g_plans.end(); ++jt)
      if (jt->second.second < oldest->second.second) oldest = jt;
    cufftDestroy(oldest->second.first);
    g_plans.erase(oldest);
  }
  TORCH_CHECK(H <= 1 << 30 && W <= 1 << 30 && batch <= 2147483647, "manifpt.freq: images too large for one cuFFT plan");
  int n[2] = {static_cast<int>(H), static_cast<int>(W)};
  const int idist = static_cast<int>(H * W), odist = static_cast<int>(H * (W / 2 + 1));
  cufftHandle plan;
  MANIFPT_CUFFT_CHECK(cufftPlanMany(&plan, 2, n, nullptr, 1, idist, nullptr, 1, odist, dbl ? CUFFT_D2Z : CUFFT_R2C, static_cast<int>(batch)));
  g_plans.emplace(key, std::make_pair(plan, ++g_plan_clock));
  return plan;
}

at::Tensor freq_spectra_cuda(const at::Tensor& images, c10::string_view mode_name) {
  TORCH_CHECK(images.dim() == 4, "manifpt.freq: images must be a (B, C, H, W) tensor, got ", images.sizes());
  TORCH_CHECK(images.is_floating_point(), "manifpt.freq: images must be floating point, got ", images.scalar_type());
  CudaBackend::check_device("manifpt.freq", "images", images);
  const int mode = parse_freq_mode(std::string_view(mode_name.data(), mode_name.size()));
  const c10::cuda::CUDAGuard guard(images.device());
  const bool dbl = images.scalar_type() == at::kDouble;
  const at::Tensor x = images.to(dbl ? at::kDouble : at::kFloat).contiguous();
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor half = at::empty({B, C, H, W / 2 + 1, 2}, x.options());
  if (B * C * H * W == 0) return freq_post<CudaBackend>(half, W, mode);
  {
    const std::lock_guard<std::mutex> lock(g_plan_mutex);
    const cufftHandle plan = plan_for(H, W, B * C, images.get_device(), dbl);
    MANIFPT_CUFFT_CHECK(cufftSetStream(plan, c10::cuda::getCurrentCUDAStream()));
    if (dbl)
      MANIFPT_CUFFT_CHECK(cufftExecD2Z(plan, const_cast<double*>(x.const_data_ptr<double>()),
                                       reinterpret_cast<cufftDoubleComplex*>(half.mutable_data_ptr<double>())));
    else
      MANIFPT_CUFFT_CHECK(cufftExecR2C(plan, const_cast<float*>(x.const_data_ptr<float>()),
                                       reinterpret_cast<cufftComplex*>(half.mutable_data_ptr<float>())));
  }
  return freq_post<CudaBackend>(half, W, mode);
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_IMPL(manifpt, CUDA, m) { m.impl("freq_spectra", &manifpt::cuda::freq_spectra_cuda); }
