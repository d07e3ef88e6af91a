#pragma once
// Probe kernels: each exercises CUDA built-ins that the project's kernels rely on (indices, barriers,
// static and dynamic shared memory, warp shuffles and votes with partial masks, __syncwarp, atomics,
// half/bfloat16 conversions, launch limits) with results the tests know in advance. They run on the
// GPU when there is one and under the emulation always (manifpt::_cuda_probe), so the emulation is
// held to the device's behaviour wherever a device is available, and under the race check.
#include <cstddef>
#include <cstdint>

#include "common/device.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

// Every thread writes its block and thread index: row (linear block) * threads + linear thread.
__global__ void probe_index_kernel(long long* out) {
  const unsigned long long b = blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + (unsigned long long)gridDim.y * blockIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  long long* row = out + (b * n + t) * 6;
  row[0] = blockIdx.x;
  row[1] = blockIdx.y;
  row[2] = blockIdx.z;
  row[3] = threadIdx.x;
  row[4] = threadIdx.y;
  row[5] = threadIdx.z;
}

// Dynamic shared memory of `words` ints: thread t fills words t, t + n, ...; after a barrier each
// reads its words shifted by 7 and adds them into a static __shared__ total. Per block: out[2b] =
// the total (3 w (w - 1) / 2 + w, any order of the adds), out[2b + 1] = whether the dynamic shared
// memory is 16-byte aligned.
// Its static shared memory as the cubin has it: the 8-byte total, padded to the 16-byte alignment of
// the dynamic shared memory that follows (cuobjdump: SHARED 16).
constexpr std::size_t kProbeSharedStatic = 16;
__global__ void probe_shared_kernel(long long* out, int words) {
  MANIFPT_DYNAMIC_SHARED(int, buf);
  __shared__ unsigned long long total;
  const int n = static_cast<int>(blockDim.x), t = static_cast<int>(threadIdx.x);
  if (t == 0) total = 0;
  for (int i = t; i < words; i += n) buf[i] = 3 * i + 1;
  __syncthreads();
  unsigned long long mine = 0;
  for (int i = t; i < words; i += n) mine += static_cast<unsigned long long>(buf[(i + 7) % words]);
  atomicAdd(&total, mine);
  __syncthreads();
  if (t == 0) {
    out[2 * blockIdx.x] = static_cast<long long>(total);
    out[2 * blockIdx.x + 1] = (reinterpret_cast<std::uintptr_t>(buf) % 16) == 0;
  }
}

// One case per block of two warps; case = {op, mask, arg, width, step}. Lane l's own argument is
// arg + l * step (shuffles take a per-lane source lane or delta). Lanes outside the mask do not call
// the intrinsic and write -7. Values: 100 + t (32-bit), ((t + 1) << 33) | t (64-bit), t + 0.5 (double,
// written as its bits).
enum ProbeWarpOp : int {
  kShflIdx = 0,
  kShflUp = 1,
  kShflDown = 2,
  kShflXor = 3,
  kShflXor64 = 4,
  kShflXorF64 = 5,
  kBallot = 6,
  kAny = 7,
  kAll = 8,
  kSyncWarp = 9,
};
constexpr int kProbeWarpThreads = 64;
constexpr int kProbeCaseWords = 5;
constexpr std::size_t kProbeWarpStatic = sizeof(long long) * kProbeWarpThreads;
__global__ void probe_warp_kernel(const int* cases, long long* out) {
  __shared__ long long s[kProbeWarpThreads];
  const int* c = cases + kProbeCaseWords * blockIdx.x;
  const int op = c[0], width = c[3];
  const unsigned mask = static_cast<unsigned>(c[1]);
  const int t = static_cast<int>(threadIdx.x), lane = t % 32, warp = t / 32;
  const int arg = c[2] + lane * c[4];
  long long r = -7;
  if (mask >> lane & 1u) {
    const int v = 100 + t;
    const long long v64 = ((static_cast<long long>(t) + 1) << 33) | t;
    switch (op) {
      case kShflIdx: r = __shfl_sync(mask, v, arg, width); break;
      case kShflUp: r = __shfl_up_sync(mask, v, static_cast<unsigned>(arg), width); break;
      case kShflDown: r = __shfl_down_sync(mask, v, static_cast<unsigned>(arg), width); break;
      case kShflXor: r = __shfl_xor_sync(mask, v, arg, width); break;
      case kShflXor64: r = __shfl_xor_sync(mask, v64, arg, width); break;
      case kShflXorF64: {
        r = __double_as_longlong(__shfl_xor_sync(mask, t + 0.5, arg, width));
        break;
      }
      case kBallot: r = static_cast<long long>(__ballot_sync(mask, (c[2] >> lane) & 1)); break;
      case kAny: r = __any_sync(mask, lane == c[2]); break;
      case kAll: r = __all_sync(mask, lane != c[2]); break;
      case kSyncWarp: {
        // Lanes of the mask exchange through shared memory; __syncwarp orders the writes before
        // the reads (the race check proves it does). A source lane outside the mask is not read.
        s[t] = v;
        __syncwarp(mask);
        const int src = (lane + c[2]) & 31;
        r = (mask >> src & 1u) ? s[warp * 32 + src] : static_cast<long long>(v);
        break;
      }
      default: r = -8;
    }
  }
  out[blockIdx.x * kProbeWarpThreads + t] = r;
}

// Device-wide atomics from every thread. Results (n threads): i32 = {n, 0, n - 1, some thread id},
// f32 = {n}, u64 = {n (n - 1) / 2, 2 n}.
__global__ void probe_atomic_kernel(int* i32, float* f32, unsigned long long* u64) {
  const int n = static_cast<int>(gridDim.x * blockDim.x);
  const int gid = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(&i32[0], 1);
  atomicMin(&i32[1], n - 1 - gid);
  atomicMax(&i32[2], gid);
  atomicExch(&i32[3], gid);
  atomicAdd(&f32[0], 1.0f);
  atomicAdd(&u64[0], static_cast<unsigned long long>(gid));
  // Compare-and-swap loop that only ever reads through atomics (a plain load would be a race).
  unsigned long long cur = 0;
  for (;;) {
    const unsigned long long prev = atomicCAS(&u64[1], cur, cur + 2);
    if (prev == cur) break;
    cur = prev;
  }
}

// float32 -> half and bfloat16 (round to nearest even) and back, per element: out[4 i + 0..3] =
// half bits, bfloat16 bits, bits of half -> float, bits of bfloat16 -> float.
__global__ void probe_convert_kernel(const float* in, long long n, int* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const __half h = __float2half_rn(in[i]);
    const __nv_bfloat16 b = __float2bfloat16_rn(in[i]);
    out[4 * i + 0] = __half_as_ushort(h);
    out[4 * i + 1] = __bfloat16_as_ushort(b);
    out[4 * i + 2] = __float_as_int(__half2float(h));
    out[4 * i + 3] = __float_as_int(__bfloat162float(b));
  }
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
