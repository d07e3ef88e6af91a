// manifpt::project, CUDA kernel (first, correct version; the fast tensor-core path is issue 3).
//
// One block owns BM fakes and walks every tile of BN reals (one launch for any N). Fakes and reals
// tiles are staged in shared memory BK dimensions at a time; each thread accumulates the direct form
// sum((x - y)^2) for a 2 x 2 micro-tile in the accumulation type (float, double for float64), so
// the result is exact up to float32 rounding of the sum with no cancellation risk. Per tile the
// (distance, index) minimum of each fake is reduced with warp shuffles under the shared rule of
// select.h (lowest index on ties) into a running minimum in shared memory; the artifact is written
// in the epilogue of the same kernel.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/all.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <limits>

#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "ops/project/project.h"
#include "ops/project/select.h"

namespace manifpt::cuda {
namespace {

constexpr int kBM = 32;  // fakes per block
constexpr int kBN = 32;  // reals per tile
constexpr int kBK = 16;  // dimensions staged per step
constexpr int kTX = 16, kTY = 16;  // threads: each owns 2 fakes x 2 reals
constexpr int kThreads = kTX * kTY;
static_assert(kBM == 2 * kTY && kBN == 2 * kTX, "each thread owns a 2 x 2 micro-tile");
static_assert(kBM * kBK == 2 * kThreads && kBN * kBK == 2 * kThreads, "each thread stages two elements per operand");

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    project_direct_kernel(const scalar_t* __restrict__ X, const scalar_t* __restrict__ Y, int64_t M, int64_t N, int64_t D,
                          scalar_t* __restrict__ A, int64_t* __restrict__ I, float* __restrict__ dist) {
  // Stored k-major so that the 16 threads of a row read consecutive reals (no 16-way bank conflict).
  __shared__ acc_t xs[kBK][kBM];
  __shared__ acc_t ys[kBK][kBN];
  __shared__ acc_t best_d[kBM];
  __shared__ long long best_i[kBM];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTX + tx;
  const int64_t i0 = int64_t(blockIdx.x) * kBM;
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  constexpr long long kNone = std::numeric_limits<long long>::max();
  if (tid < kBM) {
    best_d[tid] = inf;
    best_i[tid] = kNone;
  }
  __syncthreads();

  for (int64_t j0 = 0; j0 < N; j0 += kBN) {
    acc_t acc[2][2] = {{acc_t(0), acc_t(0)}, {acc_t(0), acc_t(0)}};
    for (int64_t k0 = 0; k0 < D; k0 += kBK) {
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        const int e = tid + s * kThreads, r = e / kBK, kk = e % kBK;
        const int64_t gk = k0 + kk, gi = i0 + r, gj = j0 + r;
        xs[kk][r] = (gi < M && gk < D) ? static_cast<acc_t>(X[gi * D + gk]) : acc_t(0);
        ys[kk][r] = (gj < N && gk < D) ? static_cast<acc_t>(Y[gj * D + gk]) : acc_t(0);
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kBK; ++kk) {
        const acc_t x0 = xs[kk][2 * ty], x1 = xs[kk][2 * ty + 1];
        const acc_t y0 = ys[kk][2 * tx], y1 = ys[kk][2 * tx + 1];
        acc_t d;
        d = x0 - y0; acc[0][0] = fma(d, d, acc[0][0]);
        d = x0 - y1; acc[0][1] = fma(d, d, acc[0][1]);
        d = x1 - y0; acc[1][0] = fma(d, d, acc[1][0]);
        d = x1 - y1; acc[1][1] = fma(d, d, acc[1][1]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      acc_t d = inf;
      long long j = kNone;
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const int64_t gj = j0 + 2 * tx + b;
        if (gj < N) {
          int64_t jj = j;
          merge_min(d, jj, acc[a][b], gj);
          j = jj;
        }
      }
      // The 16 threads sharing this row are 16 consecutive lanes of one warp: xor offsets < 16.
#pragma unroll
      for (int off = kTX / 2; off > 0; off >>= 1) {
        const acc_t od = __shfl_xor_sync(0xffffffffu, d, off);
        const long long oj = __shfl_xor_sync(0xffffffffu, j, off);
        int64_t jj = j;
        merge_min(d, jj, od, static_cast<int64_t>(oj));
        j = jj;
      }
      if (tx == 0) {
        const int r = 2 * ty + a;
        int64_t bi = best_i[r];
        acc_t bd = best_d[r];
        merge_min(bd, bi, d, static_cast<int64_t>(j));
        best_d[r] = bd;
        best_i[r] = bi;
      }
    }
  }
  __syncthreads();

  if (tid < kBM && i0 + tid < M) {
    I[i0 + tid] = best_i[tid];
    dist[i0 + tid] = static_cast<float>(best_d[tid]);
  }
  for (int r = 0; r < kBM && i0 + r < M; ++r) {
    const scalar_t* x = X + (i0 + r) * D;
    const scalar_t* y = Y + best_i[r] * D;
    scalar_t* out = A + (i0 + r) * D;
    for (int64_t k = tid; k < D; k += kThreads)
      out[k] = static_cast<scalar_t>(static_cast<acc_t>(x[k]) - static_cast<acc_t>(y[k]));
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cuda(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                            int64_t tile_n) {
  check_project_inputs(fakes, reals);
  TORCH_CHECK(fakes.is_cuda(), "manifpt.project (CUDA kernel): fakes must be on a CUDA device, got ", fakes.device());
  TORCH_CHECK(tile_m >= 0 && tile_n >= 0, "manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got ", tile_m,
              " and ", tile_n);
  const c10::cuda::CUDAGuard guard(fakes.device());
  const int64_t M = fakes.size(0), N = reals.size(0);
  const int64_t D = reals.numel() / N;
  const at::Tensor x = fakes.contiguous(), y = reals.contiguous();
  // One device-wide reduction each; the host sync is the price of a clear error instead of NaNs.
  TORCH_CHECK(at::isfinite(y).all().item<bool>(), "manifpt.project: reals contains NaN or Inf");
  TORCH_CHECK(M == 0 || at::isfinite(x).all().item<bool>(), "manifpt.project: fakes contains NaN or Inf");
  at::Tensor artifact = at::empty(fakes.sizes(), fakes.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor index = at::empty({M}, fakes.options().dtype(at::kLong));
  at::Tensor distance = at::empty({M}, fakes.options().dtype(at::kFloat));
  if (M == 0) return {artifact, index, distance};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>(ceil_div(M, kBM))), block(kTX, kTY);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "manifpt_project_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    project_direct_kernel<scalar_t, acc_t><<<grid, block, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), M, N, D, artifact.mutable_data_ptr<scalar_t>(),
        index.mutable_data_ptr<int64_t>(), distance.mutable_data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {artifact, index, distance};
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_IMPL(manifpt, CUDA, m) { m.impl("project", &manifpt::cuda::project_cuda); }
