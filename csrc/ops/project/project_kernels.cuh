#pragma once
// Device code of manifpt::project on CUDA (no ATen/c10): compiled by nvcc into the CUDA op
// (project_cuda.cu) and by the host compiler into the emulated op (project_emulated.cpp) and the
// race check (testing/race_check.cpp), which run it on CPU threads.
//
// The direct kernel (first, correct version; the fast tensor-core path is the next issue). One block
// owns BM fakes and walks every tile of BN reals (one launch for any N). Fakes and reals tiles are
// staged in shared memory BK dimensions at a time; each thread accumulates the direct form
// sum((x - y)^2) for a 2 x 2 micro-tile in the accumulation type (float, double for float64), so the
// result is exact up to float32 rounding of the sum with no cancellation risk. Per tile the
// (distance, index) minimum of each fake is reduced with warp shuffles under the shared rule of
// select.h (lowest index on ties) into a running minimum in shared memory; the artifact is written
// in the epilogue of the same kernel.
#include <cstddef>
#include <cstdint>
#include <limits>

#include "common/device.cuh"
#include "ops/project/select.h"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

constexpr int kBM = 32;  // fakes per block
constexpr int kBN = 32;  // reals per tile
constexpr int kBK = 16;  // dimensions staged per step
constexpr int kTX = 16, kTY = 16;  // threads: each owns 2 fakes x 2 reals
constexpr int kThreads = kTX * kTY;
static_assert(kBM == 2 * kTY && kBN == 2 * kTX, "each thread owns a 2 x 2 micro-tile");
static_assert(kBM * kBK == 2 * kThreads && kBN * kBK == 2 * kThreads, "each thread stages two elements per operand");

// Static shared memory of project_direct_kernel<*, acc_t>, as declared below (the launch checks of
// the emulation count it; the cuobjdump test compares it with the cubin).
template <typename acc_t>
constexpr std::size_t project_direct_static_smem() {
  return sizeof(acc_t) * (kBK * kBM + kBK * kBN + kBM) + sizeof(long long) * kBM;
}

// X: M rows of D elements, row r at X + r * ldx (rows contiguous inside, any row stride: the
// launcher passes strided views without a copy). Same for Y with ldy. All index arithmetic that can
// exceed 2^31 (row * stride, the global k) is int64.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    project_direct_kernel(const scalar_t* __restrict__ X, int64_t ldx, const scalar_t* __restrict__ Y, int64_t ldy, int64_t M,
                          int64_t N, int64_t D, scalar_t* __restrict__ A, int64_t* __restrict__ I, float* __restrict__ dist) {
  using device::widen;
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
        xs[kk][r] = (gi < M && gk < D) ? static_cast<acc_t>(widen(X[gi * ldx + gk])) : acc_t(0);
        ys[kk][r] = (gj < N && gk < D) ? static_cast<acc_t>(widen(Y[gj * ldy + gk])) : acc_t(0);
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
    const scalar_t* x = X + (i0 + r) * ldx;
    const scalar_t* y = Y + best_i[r] * ldy;
    scalar_t* out = A + (i0 + r) * D;
    for (int64_t k = tid; k < D; k += kThreads)
      out[k] = device::narrow<scalar_t>(static_cast<acc_t>(widen(x[k])) - static_cast<acc_t>(widen(y[k])));
  }
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
