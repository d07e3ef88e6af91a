#pragma once
// The fast variant of manifpt::project on CUDA: candidates from a tensor-core expansion, the exact
// answer from a float64 re-rank of the candidates (no ATen/c10; compiled by nvcc and, through the
// CUDA emulation, by the host compiler).
//
// Kernels, in launch order:
//   column_sum_kernel, mean_finish_kernel  mean of the reals in float64 (fixed order: deterministic)
//   row_norms_kernel<P>                    |q(v - mean)|^2 and |q(v - mean)| of every fake and real,
//                                          q = the rounding to the precision's operand type
//   project_mma_kernel<P>                  the projection (below)
//   project_merge_kernel                   only when the reals are split across blocks (few fakes)
//
// project_mma_kernel: a block owns kMmaBM fakes and walks a range of reals in tiles of kMmaBN. Per
// tile, 4 warps (2 x 2, each 32 x 32) accumulate x.y of the centred, rounded operands with wmma
// (DMMA m8n8k4 in double for Precision::Exact; HMMA m16n16k8 tf32 or m16n16k16 bf16 with float
// accumulators), staged kMmaBK dimensions at a time. The tile of dot products goes to shared memory
// (it never reaches global memory), where two threads per fake scan it: approximate distance
// d~ = |x|^2 + |y|^2 - 2 x.y, error bound B = g (|x| + |y|)^2 + e1 (|x| + |y|) + e0 for the pair.
// Each thread keeps an upper bound U on the fake's exact minimum (min of d~ + B, shared by the two
// threads after every tile) and a list of kMmaCand candidates with d~ - B <= U (a full list is
// compacted against U; still full: the row is scanned directly). After the last tile one warp per
// fake re-ranks its candidates in the direct form sum((x - y)^2), in float64, on the original
// values, ties to the lowest index, and writes the index, the distance and the artifact (or, when
// the reals are split over blockIdx.y, a partial (distance, index) that the merge kernel reduces
// under the same rule and then writes the outputs).
#include <cstddef>
#include <cstdint>
#include <limits>

#include "common/device.cuh"
#include "common/mma.cuh"
#include "ops/project/select.h"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

enum class Precision : int { Exact = 0, TF32 = 1, BF16 = 2 };

constexpr int kMmaBM = 64;      // fakes per block
constexpr int kMmaBN = 64;      // reals per tile
constexpr int kMmaBK = 16;      // dimensions staged per step
constexpr int kMmaThreads = 128;  // 4 warps, 2 x 2 over the 64 x 64 tile
constexpr int kMmaCand = 8;     // candidates per scanning thread (two threads, 16 per fake)
constexpr int kMmaLdc = kMmaBN + 4;
constexpr int kMmaSmemAlign = 128;
static_assert(kMmaThreads == 2 * kMmaBM, "two scanning threads per fake");

template <Precision P>
struct MmaTraits;
template <>
struct MmaTraits<Precision::Exact> {
  using frag_t = double;  // wmma element type
  using smem_t = double;  // staged operand
  using acc_t = double;
  static constexpr int WM = 8, WN = 8, WK = 4;
  static constexpr int LDS = kMmaBK + 4;  // 160 bytes: rows of a fragment stay 256-bit aligned
  // Centred in float64: rounding of u = 2^-53 relative, counted by the expansion's gamma.
  MANIFPT_DEVICE_INLINE static smem_t quantize(double c) { return c; }
  MANIFPT_DEVICE_INLINE static double value(smem_t v) { return v; }
  static constexpr double unit_in = 0.0;
  static constexpr double unit_acc = 0x1p-52;  // DMMA is IEEE FMA (2^-53); one more bit of room
};
template <>
struct MmaTraits<Precision::TF32> {
  using frag_t = nvcuda::wmma::precision::tf32;
  using smem_t = float;
  using acc_t = float;
  static constexpr int WM = 16, WN = 16, WK = 8;
  static constexpr int LDS = kMmaBK + 8;
  MANIFPT_DEVICE_INLINE static smem_t quantize(double c) { return nvcuda::wmma::__float_to_tf32(static_cast<float>(c)); }
  MANIFPT_DEVICE_INLINE static double value(smem_t v) { return v; }
  static constexpr double unit_in = 0x1p-11 + 0x1p-23;  // tf32 (11 bits, nearest) after float
  static constexpr double unit_acc = 0x1p-23;  // tensor-core float sums: 2 units of roundoff per add
};
template <>
struct MmaTraits<Precision::BF16> {
  using frag_t = __nv_bfloat16;
  using smem_t = __nv_bfloat16;
  using acc_t = float;
  static constexpr int WM = 16, WN = 16, WK = 16;
  static constexpr int LDS = kMmaBK + 8;
  MANIFPT_DEVICE_INLINE static smem_t quantize(double c) { return __float2bfloat16_rn(static_cast<float>(c)); }
  MANIFPT_DEVICE_INLINE static double value(smem_t v) { return __bfloat162float(v); }
  static constexpr double unit_in = 0x1p-8 + 0x1p-23;  // bfloat16 (8 bits, nearest even) after float
  static constexpr double unit_acc = 0x1p-23;
};

// The coefficients of the per-pair bound B = g a^2 + e1 a + e0, a = |x| + |y| (norms of the rounded
// operands): g covers the expansion in the accumulation type (gamma_{D+8} of select.h) and the
// rounding of the operands (a relative error u_in per element moves |x - y| by at most
// u_in (|x| + |y|), so the squared distance by (2 u_in + u_in^2) (|x| + |y|)^2, with the norms of the
// rounded operands smaller by at most (1 - u_in)); e1 and e0 cover flush-to-zero of subnormal
// operands and results (an absolute error of the smallest normal number per element and per add).
struct MmaBound {
  double g, e1, e0;
};
template <Precision P>
inline MmaBound mma_bound(int64_t D) {
  using T = MmaTraits<P>;
  const double u = T::unit_in;
  const double tiny = static_cast<double>(std::numeric_limits<typename T::acc_t>::min());
  const double g = expansion_error_coeff(D, T::unit_acc) + 1.01 * (2 * u + u * u) / ((1 - u) * (1 - u));
  return {g, 4.0 * std::sqrt(static_cast<double>(D)) * tiny, 4.0 * static_cast<double>(D + 8) * tiny};
}

// Dynamic shared memory of project_mma_kernel<P>: the staged tiles, or (after the K loop) the tile
// of dot products in their place; the reals' norms of the tile; the fakes' upper bounds; and the
// candidate lists of the 128 scanning threads.
template <Precision P>
struct MmaSmem {
  using T = MmaTraits<P>;
  using acc_t = typename T::acc_t;
  static constexpr std::size_t stage = sizeof(typename T::smem_t) * (kMmaBM + kMmaBN) * T::LDS;
  static constexpr std::size_t dots = sizeof(acc_t) * kMmaBM * kMmaLdc;
  static constexpr std::size_t tile = ((stage > dots ? stage : dots) + 31) / 32 * 32;
  static constexpr std::size_t ynorm = tile;                                      // acc_t ysq[BN], yn[BN]
  static constexpr std::size_t urow = ynorm + 2 * kMmaBN * sizeof(acc_t);        // acc_t U[BM]
  static constexpr std::size_t cand_i = (urow + kMmaBM * sizeof(acc_t) + 7) / 8 * 8;  // long long [128][C]
  static constexpr std::size_t cand_lb = cand_i + kMmaThreads * kMmaCand * sizeof(long long);  // acc_t [128][C]
  static constexpr std::size_t cand_n = cand_lb + kMmaThreads * kMmaCand * sizeof(acc_t);      // int [128]
  static constexpr std::size_t over = cand_n + kMmaThreads * sizeof(int);                     // int [128]
  static constexpr std::size_t bytes = over + kMmaThreads * sizeof(int);
};

// ---- the mean of the reals and the norms ------------------------------------------------------------

constexpr int kColThreads = 256;

// partial[c * D + k] = sum of Y[j][k] over the rows j of chunk c (rows_per_chunk rows), in float64.
template <typename scalar_t>
__global__ void __launch_bounds__(kColThreads)
    column_sum_kernel(const scalar_t* __restrict__ Y, int64_t ldy, int64_t N, int64_t D, int64_t rows_per_chunk,
                      double* __restrict__ partial) {
  const int64_t k = int64_t(blockIdx.x) * kColThreads + threadIdx.x;
  if (k >= D) return;
  const int64_t j0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t j1 = j0 + rows_per_chunk < N ? j0 + rows_per_chunk : N;
  double s = 0.0;
  for (int64_t j = j0; j < j1; ++j) s += static_cast<double>(device::widen(Y[j * ldy + k]));
  partial[int64_t(blockIdx.y) * D + k] = s;
}

__global__ void __launch_bounds__(kColThreads)
    mean_finish_kernel(const double* __restrict__ partial, int64_t chunks, int64_t N, int64_t D, double* __restrict__ mu) {
  const int64_t k = int64_t(blockIdx.x) * kColThreads + threadIdx.x;
  if (k >= D) return;
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c * D + k];
  mu[k] = s / static_cast<double>(N);
}

// One warp per row: sq[r] = |q(row - mu)|^2 (float64 sum, stored in acc_t), nrm[r] = sqrt of it.
template <Precision P, typename scalar_t>
__global__ void __launch_bounds__(kMmaThreads)
    row_norms_kernel(const scalar_t* __restrict__ X, int64_t ldx, int64_t R, int64_t D, const double* __restrict__ mu,
                     typename MmaTraits<P>::acc_t* __restrict__ sq, typename MmaTraits<P>::acc_t* __restrict__ nrm) {
  using T = MmaTraits<P>;
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * (kMmaThreads / 32) + (threadIdx.x >> 5);
  if (r >= R) return;  // warp-uniform
  const scalar_t* x = X + r * ldx;
  double s = 0.0;
  for (int64_t k = lane; k < D; k += 32) {
    const double q = T::value(T::quantize(static_cast<double>(device::widen(x[k])) - mu[k]));
    s = fma(q, q, s);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) {
    sq[r] = static_cast<typename T::acc_t>(s);
    nrm[r] = static_cast<typename T::acc_t>(sqrt(s));
  }
}

// ---- the projection ------------------------------------------------------------------------------

// sum((x - y)^2) over D in float64, by one warp (every lane returns the same value).
template <typename scalar_t>
MANIFPT_DEVICE_INLINE double warp_sqdist(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y, int64_t D, int lane) {
  double s = 0.0;
  for (int64_t k = lane; k < D; k += 32) {
    const double d = static_cast<double>(device::widen(x[k])) - static_cast<double>(device::widen(y[k]));
    s = fma(d, d, s);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

// Warp-wide (distance, index) minimum under select.h's rule.
MANIFPT_DEVICE_INLINE void warp_min(double& d, long long& j) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const double od = __shfl_xor_sync(0xffffffffu, d, off);
    const long long oj = __shfl_xor_sync(0xffffffffu, j, off);
    int64_t jj = j;
    merge_min(d, jj, od, static_cast<int64_t>(oj));
    j = jj;
  }
}

// The artifact row x - y in the artifact type (float for float/half/bfloat16, double for double).
template <typename scalar_t>
MANIFPT_DEVICE_INLINE void write_artifact(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y, scalar_t* __restrict__ out,
                                          int64_t D, int lane) {
  using art_t = decltype(device::widen(x[0]));
  for (int64_t k = lane; k < D; k += 32) out[k] = device::narrow<scalar_t>(static_cast<art_t>(device::widen(x[k])) - static_cast<art_t>(device::widen(y[k])));
}

// minBlocksPerMultiprocessor = 1: without it ptxas (nvcc 13) capped the tf32/bf16 kernels at 168
// registers and spilled 16 bytes (cuobjdump; the cubin test asserts there are no spills).
template <Precision P, typename scalar_t>
__global__ void __launch_bounds__(kMmaThreads, 1)
    project_mma_kernel(const scalar_t* __restrict__ X, int64_t ldx, const scalar_t* __restrict__ Y, int64_t ldy, int64_t M,
                       int64_t N, int64_t D, const double* __restrict__ mu, const typename MmaTraits<P>::acc_t* __restrict__ xsq,
                       const typename MmaTraits<P>::acc_t* __restrict__ xn, const typename MmaTraits<P>::acc_t* __restrict__ ysq,
                       const typename MmaTraits<P>::acc_t* __restrict__ yn, double g_, double e1_, double e0_, int64_t chunk,
                       scalar_t* __restrict__ A, int64_t* __restrict__ I, float* __restrict__ dist, double* __restrict__ part_d,
                       int64_t* __restrict__ part_i) {
  namespace wmma = nvcuda::wmma;
  using T = MmaTraits<P>;
  using acc_t = typename T::acc_t;
  using smem_t = typename T::smem_t;
  using L = MmaSmem<P>;
  constexpr int WM = T::WM, WN = T::WN, WK = T::WK, LDS = T::LDS;
  constexpr int FM = 32 / WM, FN = 32 / WN;  // fragments per warp
  constexpr long long kNone = std::numeric_limits<long long>::max();
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  const acc_t g = static_cast<acc_t>(g_), e1 = static_cast<acc_t>(e1_), e0 = static_cast<acc_t>(e0_);

  // wmma needs 256-bit aligned tiles: the launcher adds kMmaSmemAlign bytes for this round-up.
  MANIFPT_DYNAMIC_SHARED(unsigned char, smem_base);
  unsigned char* smem = smem_base + ((kMmaSmemAlign - reinterpret_cast<uintptr_t>(smem_base) % kMmaSmemAlign) % kMmaSmemAlign);
  smem_t* xs = reinterpret_cast<smem_t*>(smem);  // [BM][LDS]
  smem_t* ys = xs + kMmaBM * LDS;               // [BN][LDS]
  acc_t* cs = reinterpret_cast<acc_t*>(smem);    // [BM][LDC], over the staged tiles after the K loop
  acc_t* ysq_s = reinterpret_cast<acc_t*>(smem + L::ynorm);
  acc_t* yn_s = ysq_s + kMmaBN;
  acc_t* urow = reinterpret_cast<acc_t*>(smem + L::urow);
  long long* cand_i = reinterpret_cast<long long*>(smem + L::cand_i);
  acc_t* cand_lb = reinterpret_cast<acc_t*>(smem + L::cand_lb);
  int* cand_n = reinterpret_cast<int*>(smem + L::cand_n);
  int* over_s = reinterpret_cast<int*>(smem + L::over);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
  const int64_t i0 = int64_t(blockIdx.x) * kMmaBM;
  const int64_t n_begin = int64_t(blockIdx.y) * chunk;
  const int64_t n_end = n_begin + chunk < N ? n_begin + chunk : N;

  // Scanning thread: fake sr of the block, columns [32 sh, 32 sh + 32) of each tile.
  const int sr = tid >> 1, sh = tid & 1;
  const bool row_ok = i0 + sr < M;
  const acc_t my_sq = row_ok ? xsq[i0 + sr] : acc_t(0), my_n = row_ok ? xn[i0 + sr] : acc_t(0);
  long long* my_ci = cand_i + tid * kMmaCand;
  acc_t* my_cl = cand_lb + tid * kMmaCand;
  acc_t U = inf;
  int cn = 0;
  bool over = false;

  for (int64_t j0 = n_begin; j0 < n_end; j0 += kMmaBN) {
    if (tid < kMmaBN) {
      const int64_t gj = j0 + tid;
      ysq_s[tid] = gj < n_end ? ysq[gj] : acc_t(0);
      yn_s[tid] = gj < n_end ? yn[gj] : acc_t(0);
    }
    wmma::fragment<wmma::accumulator, WM, WN, WK, acc_t> acc[FM][FN];
#pragma unroll
    for (int a = 0; a < FM; ++a)
#pragma unroll
      for (int b = 0; b < FN; ++b) wmma::fill_fragment(acc[a][b], acc_t(0));
    // Fragments wholly outside the fakes or the reals (small M or N) skip their mma (warp-uniform).
    const int64_t wrow = i0 + wm * 32, wcol = j0 + wn * 32;
    for (int64_t k0 = 0; k0 < D; k0 += kMmaBK) {
#pragma unroll
      for (int s = 0; s < kMmaBM * kMmaBK / kMmaThreads; ++s) {
        const int e = tid + s * kMmaThreads, r = e / kMmaBK, kk = e % kMmaBK;
        const int64_t gk = k0 + kk, gi = i0 + r, gj = j0 + r;
        const double m = gk < D ? mu[gk] : 0.0;
        xs[r * LDS + kk] = (gi < M && gk < D) ? T::quantize(static_cast<double>(device::widen(X[gi * ldx + gk])) - m) : T::quantize(0.0);
        ys[r * LDS + kk] = (gj < n_end && gk < D) ? T::quantize(static_cast<double>(device::widen(Y[gj * ldy + gk])) - m) : T::quantize(0.0);
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kMmaBK; kk += WK) {
        wmma::fragment<wmma::matrix_a, WM, WN, WK, typename T::frag_t, wmma::row_major> fa[FM];
        wmma::fragment<wmma::matrix_b, WM, WN, WK, typename T::frag_t, wmma::col_major> fb[FN];
#pragma unroll
        for (int a = 0; a < FM; ++a)
          if (wrow + a * WM < M) wmma::load_matrix_sync(fa[a], xs + (wm * 32 + a * WM) * LDS + kk, LDS);
#pragma unroll
        for (int b = 0; b < FN; ++b)
          if (wcol + b * WN < n_end) wmma::load_matrix_sync(fb[b], ys + (wn * 32 + b * WN) * LDS + kk, LDS);
#pragma unroll
        for (int a = 0; a < FM; ++a)
#pragma unroll
          for (int b = 0; b < FN; ++b)
            if (wrow + a * WM < M && wcol + b * WN < n_end) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < FM; ++a)
#pragma unroll
      for (int b = 0; b < FN; ++b)
        if (wrow + a * WM < M && wcol + b * WN < n_end)
          wmma::store_matrix_sync(cs + (wm * 32 + a * WM) * kMmaLdc + wn * 32 + b * WN, acc[a][b], kMmaLdc, wmma::mem_row_major);
    __syncthreads();

    // Pass 1: the tile's upper bound on the fake's minimum, shared by its two threads.
    const int c0 = sh * 32;
    const int64_t rem = n_end - j0 - c0;
    const int cend = !row_ok || rem <= 0 ? 0 : (rem < 32 ? static_cast<int>(rem) : 32);
    const acc_t* crow = cs + sr * kMmaLdc + c0;
    acc_t m = inf;
    for (int c = 0; c < cend; ++c) {
      const acc_t dt = my_sq + ysq_s[c0 + c] - acc_t(2) * crow[c];
      const acc_t a = my_n + yn_s[c0 + c];
      const acc_t ub = dt + (g * a * a + e1 * a + e0);
      m = ub < m ? ub : m;
    }
    const acc_t om = __shfl_xor_sync(0xffffffffu, m, 1);
    m = om < m ? om : m;
    U = m < U ? m : U;
    // Pass 2: candidates. A NaN bound (overflow) keeps the real: only a comparison that is certain drops one.
    for (int c = 0; c < cend && !over; ++c) {
      const acc_t dt = my_sq + ysq_s[c0 + c] - acc_t(2) * crow[c];
      const acc_t a = my_n + yn_s[c0 + c];
      const acc_t lb = dt - (g * a * a + e1 * a + e0);
      if (lb > U) continue;
      if (cn == kMmaCand) {
        int w = 0;
        for (int q = 0; q < kMmaCand; ++q)
          if (!(my_cl[q] > U)) {
            my_ci[w] = my_ci[q];
            my_cl[w] = my_cl[q];
            ++w;
          }
        cn = w;
        if (cn == kMmaCand) {
          over = true;
          break;
        }
      }
      my_ci[cn] = j0 + c0 + c;
      my_cl[cn] = lb;
      ++cn;
    }
    __syncthreads();  // the tile of dot products is read before the next tile's staging overwrites it
  }
  cand_n[tid] = cn;
  over_s[tid] = over ? 1 : 0;
  if (sh == 0) urow[sr] = U;
  __syncthreads();

  // Re-rank and epilogue: one warp per fake.
  for (int r = warp; r < kMmaBM; r += kMmaThreads / 32) {
    const int64_t gi = i0 + r;
    if (gi >= M) break;
    const scalar_t* x = X + gi * ldx;
    double best_d = std::numeric_limits<double>::infinity();
    long long best_i = kNone;
    if (over_s[2 * r] | over_s[2 * r + 1]) {
      // Overflowed candidate list: every real of the range, in the direct form.
      for (int64_t j = n_begin; j < n_end; ++j) {
        const double d = warp_sqdist(x, Y + j * ldy, D, lane);
        int64_t bi = best_i;
        merge_min(best_d, bi, d, j);
        best_i = bi;
      }
    } else {
      const acc_t ur = urow[r];
      for (int t = 2 * r; t < 2 * r + 2; ++t)
        for (int q = 0; q < cand_n[t]; ++q) {
          if (cand_lb[t * kMmaCand + q] > ur) continue;  // dropped by a later tile's bound
          const long long j = cand_i[t * kMmaCand + q];
          const double d = warp_sqdist(x, Y + j * ldy, D, lane);
          int64_t bi = best_i;
          merge_min(best_d, bi, d, static_cast<int64_t>(j));
          best_i = bi;
        }
    }
    if (gridDim.y == 1) {
      if (lane == 0) {
        I[gi] = best_i;
        dist[gi] = static_cast<float>(best_d);
      }
      write_artifact(x, Y + best_i * ldy, A + gi * D, D, lane);
    } else if (lane == 0) {
      part_d[int64_t(blockIdx.y) * M + gi] = best_d;
      part_i[int64_t(blockIdx.y) * M + gi] = best_i;
    }
  }
}

// Reals split over S = gridDim.y of the projection: one warp per fake reduces the S partial
// minima (same rule: smaller distance, then lower index) and writes the outputs.
template <typename scalar_t>
__global__ void __launch_bounds__(kMmaThreads, 1)
    project_merge_kernel(const scalar_t* __restrict__ X, int64_t ldx, const scalar_t* __restrict__ Y, int64_t ldy, int64_t M,
                         int64_t D, int64_t S, const double* __restrict__ part_d, const int64_t* __restrict__ part_i,
                         scalar_t* __restrict__ A, int64_t* __restrict__ I, float* __restrict__ dist) {
  const int lane = threadIdx.x & 31;
  const int64_t gi = int64_t(blockIdx.x) * (kMmaThreads / 32) + (threadIdx.x >> 5);
  if (gi >= M) return;  // warp-uniform
  double d = std::numeric_limits<double>::infinity();
  long long j = std::numeric_limits<long long>::max();
  for (int64_t s = lane; s < S; s += 32) {
    int64_t jj = j;
    merge_min(d, jj, part_d[s * M + gi], part_i[s * M + gi]);
    j = jj;
  }
  warp_min(d, j);
  if (lane == 0) {
    I[gi] = j;
    dist[gi] = static_cast<float>(d);
  }
  write_artifact(X + gi * ldx, Y + j * ldy, A + gi * D, D, lane);
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
