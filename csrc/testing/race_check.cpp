// The race check: runs the project's CUDA kernels (the same .cuh device code nvcc compiles) under
// the CUDA emulation, built with -fsanitize=thread, and checks their results against a naive
// reference. ThreadSanitizer sees every CUDA thread as a fiber and only the orderings CUDA
// guarantees (barriers, __syncwarp, the end of a launch), so an access pair they do not order, in
// shared or global memory, is reported as a data race and the run fails.
//
// Build and run (tests/test_cuda_emulation.py does this, with the binary cached by source hash):
//   g++ -std=c++20 -O2 -g -Icsrc -c csrc/testing/cuda_emu.cpp -o cuda_emu.o    # not instrumented
//   g++ -std=c++20 -O1 -g -fsanitize=thread -Wno-unknown-pragmas -ffp-contract=off -Icsrc \
//       csrc/testing/race_check.cpp cuda_emu.o -o race_check
//   ./race_check kernels
//
// Commands:
//   kernels          every kernel of the project on small shapes, all dtypes (the direct kernel, and the
//                    tensor-core pipeline in each precision, with and without a split of the reals);
//                    exit 1 on a wrong result
//   planted          a tiny kernel missing a __syncthreads: TSAN must report a race (exit 66)
//   planted-fixed    the same kernel with its barrier: no report
//   deadlock-barrier a __syncthreads that half of the block skips: reported by the emulation (exit 3)
//   deadlock-warp    a lane named in a shuffle mask that never arrives: reported (exit 3)
//   limits           launches CUDA refuses: each must be refused (exit 1 if one runs)
// Without -fsanitize=thread the same binary checks results and the emulation's reports only.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/project/cuda/mma.cuh"
#include "ops/project/project_kernels.cuh"
#include "testing/probe_kernels.cuh"

namespace {

using manifpt::emu::LaunchConfig;
using manifpt::emu::launch;

int g_failures = 0;

void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  ++g_failures;
}

// Deterministic data: a small LCG, values in [-2, 2) on a 1/64 grid, so that every value is exact
// in half and bfloat16 too and the reference needs no rounding assumptions about the inputs.
struct Lcg {
  uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int>((s >> 33) % 256) - 128) / 64.0f;
  }
};

template <class T>
T from_float(float v) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(v);
  else
    return static_cast<T>(v);
}
template <class T>
double to_double(T v) {
  return static_cast<double>(manifpt::device::widen(v));
}

// The kernels' result against float64 arithmetic on the same inputs: the index (ties to the lowest), the
// float distance, and the artifact bit for bit as the kernel's own type `Art` rounds it. Both kernels'
// checks use it; the cases are built so that the float64 answer is the only right one.
template <class Art, class T>
void check_against_float64(const std::string& where, const std::vector<T>& X, int64_t ldx, const std::vector<T>& Y, int64_t ldy,
                           int64_t M, int64_t N, int64_t D, const std::vector<T>& A, const std::vector<int64_t>& I,
                           const std::vector<float>& dist) {
  for (int64_t i = 0; i < M; ++i) {
    double best = std::numeric_limits<double>::infinity();
    int64_t bj = -1;
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) {
        const double d = to_double(X[i * ldx + k]) - to_double(Y[j * ldy + k]);
        s += d * d;
      }
      if (s < best) best = s, bj = j;
    }
    if (I[i] != bj) fail(where + ": row " + std::to_string(i) + " index " + std::to_string(I[i]) + ", expected " + std::to_string(bj));
    if (dist[i] != static_cast<float>(best)) fail(where + ": row " + std::to_string(i) + " distance");
    for (int64_t k = 0; k < D && bj >= 0; ++k) {
      const T want = manifpt::device::narrow<T>(static_cast<Art>(manifpt::device::widen(X[i * ldx + k])) -
                                                static_cast<Art>(manifpt::device::widen(Y[bj * ldy + k])));
      if (std::memcmp(&A[i * D + k], &want, sizeof(T)) != 0) {
        fail(where + ": row " + std::to_string(i) + " artifact");
        break;
      }
    }
  }
}

// project_direct_kernel on M fakes, N reals, D dims, rows `pad` elements apart beyond D (the
// in-place strided path); reals repeat every `period` rows, so ties across tiles must go to the
// lowest index.
template <class T, class Acc>
void check_project(const char* dtype, int64_t M, int64_t N, int64_t D, int64_t pad, int64_t period, uint64_t seed) {
  const int64_t ldx = D + pad, ldy = D + pad;
  std::vector<T> X(static_cast<size_t>(std::max<int64_t>(M, 1) * ldx)), Y(static_cast<size_t>(N * ldy));
  Lcg g{seed};
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < D; ++k) X[i * ldx + k] = from_float<T>(g.next());
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < D; ++k) Y[j * ldy + k] = j >= period ? Y[(j % period) * ldy + k] : from_float<T>(g.next());
  std::vector<T> A(static_cast<size_t>(std::max<int64_t>(M, 1) * D));
  std::vector<int64_t> I(static_cast<size_t>(std::max<int64_t>(M, 1)), -1);
  std::vector<float> dist(static_cast<size_t>(std::max<int64_t>(M, 1)), -1.0f);
  const LaunchConfig cfg{dim3(static_cast<unsigned>((M + manifpt::cuda::kBM - 1) / manifpt::cuda::kBM)),
                         dim3(manifpt::cuda::kTX, manifpt::cuda::kTY), 0, manifpt::cuda::project_direct_static_smem<Acc>(), 2};
  launch(cfg, &manifpt::cuda::project_direct_kernel<T, Acc>, X.data(), ldx, Y.data(), ldy, M, N, D, A.data(), I.data(), dist.data());
  // Inputs lie on a 1/64 grid and |x - y| < 4: every term and every partial sum is a multiple of
  // 2^-12 below 16 D, exact in float for D < 256, so the kernel's distances are exact and the
  // argmin is certain, ties included.
  const std::string where = std::string(dtype) + " M=" + std::to_string(M) + " N=" + std::to_string(N) + " D=" + std::to_string(D);
  check_against_float64<Acc>(where, X, ldx, Y, ldy, M, N, D, A, I, dist);
}

// The tensor-core pipeline of cuda/mma.cuh (mean, norms, projection, merge) as project_launch.h runs
// it, on the same data as check_project; `splits` ranges of reals (> 1: the merge kernel runs).
template <class T, manifpt::cuda::Precision P>
void check_project_mma(const char* dtype, int64_t M, int64_t N, int64_t D, int64_t pad, int64_t period, int64_t splits, uint64_t seed) {
  using namespace manifpt::cuda;
  using acc_t = typename MmaTraits<P>::acc_t;
  using art_t = decltype(manifpt::device::widen(T{}));
  const int64_t ldx = D + pad, ldy = D + pad;
  std::vector<T> X(static_cast<size_t>(M * ldx)), Y(static_cast<size_t>(N * ldy));
  Lcg g{seed};
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < D; ++k) X[i * ldx + k] = from_float<T>(g.next());
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < D; ++k) Y[j * ldy + k] = j >= period ? Y[(j % period) * ldy + k] : from_float<T>(g.next());
  std::vector<T> A(static_cast<size_t>(M * D));
  std::vector<int64_t> I(static_cast<size_t>(M), -1);
  std::vector<float> dist(static_cast<size_t>(M), -1.0f);
  const int64_t chunks = 2, rpc = (N + 1) / 2;
  std::vector<double> partial(static_cast<size_t>(chunks * D)), mu(static_cast<size_t>(D));
  const unsigned cb = static_cast<unsigned>((D + kColThreads - 1) / kColThreads);
  launch(LaunchConfig{dim3(cb, (N + rpc - 1) / rpc), dim3(kColThreads), 0, 0, 2}, &column_sum_kernel<T>, Y.data(), ldy, N, D, rpc, partial.data());
  launch(LaunchConfig{dim3(cb), dim3(kColThreads), 0, 0, 2}, &mean_finish_kernel, static_cast<const double*>(partial.data()),
         (N + rpc - 1) / rpc, N, D, mu.data());
  std::vector<acc_t> xsq(M), xn(M), ysq(N), yn(N);
  launch(LaunchConfig{dim3(static_cast<unsigned>((M + 3) / 4)), dim3(kMmaThreads), 0, 0, 2}, &row_norms_kernel<P, T>, X.data(), ldx, M, D,
         static_cast<const double*>(mu.data()), xsq.data(), xn.data());
  launch(LaunchConfig{dim3(static_cast<unsigned>((N + 3) / 4)), dim3(kMmaThreads), 0, 0, 2}, &row_norms_kernel<P, T>, Y.data(), ldy, N, D,
         static_cast<const double*>(mu.data()), ysq.data(), yn.data());
  const int64_t ntiles = (N + kMmaBN - 1) / kMmaBN, S0 = std::min(splits, ntiles);
  const int64_t chunk = (ntiles + S0 - 1) / S0 * kMmaBN, S = (N + chunk - 1) / chunk;
  std::vector<double> part_d(static_cast<size_t>(S * M));
  std::vector<int64_t> part_i(static_cast<size_t>(S * M));
  const MmaBound b = mma_bound<P>(D);
  const std::size_t smem = MmaSmem<P>::bytes + kMmaSmemAlign;
  if (smem > 48 * 1024) manifpt::emu::set_max_dynamic_shared_memory(&project_mma_kernel<P, T>, 0, smem);
  launch(LaunchConfig{dim3(static_cast<unsigned>((M + kMmaBM - 1) / kMmaBM), static_cast<unsigned>(S)), dim3(kMmaThreads), smem, 0, 2},
         &project_mma_kernel<P, T>, X.data(), ldx, Y.data(), ldy, M, N, D, static_cast<const double*>(mu.data()),
         static_cast<const acc_t*>(xsq.data()), static_cast<const acc_t*>(xn.data()), static_cast<const acc_t*>(ysq.data()),
         static_cast<const acc_t*>(yn.data()), b.g, b.e1, b.e0, chunk, A.data(), I.data(), dist.data(), part_d.data(), part_i.data());
  if (S > 1)
    launch(LaunchConfig{dim3(static_cast<unsigned>((M + 3) / 4)), dim3(kMmaThreads), 0, 0, 2}, &project_merge_kernel<T>, X.data(), ldx,
           Y.data(), ldy, M, D, S, static_cast<const double*>(part_d.data()), static_cast<const int64_t*>(part_i.data()), A.data(), I.data(),
           dist.data());
  const std::string where = std::string("mma<") + std::to_string(static_cast<int>(P)) + "> " + dtype + " M=" + std::to_string(M) +
                            " N=" + std::to_string(N) + " D=" + std::to_string(D) + " splits=" + std::to_string(S);
  check_against_float64<art_t>(where, X, ldx, Y, ldy, M, N, D, A, I, dist);
}

void check_probes() {
  using namespace manifpt::cuda;
  {  // shared: dynamic + static shared memory, barrier, shared atomics; two blocks
    const int words = 1000;
    std::vector<long long> out(4, -1);
    launch(LaunchConfig{dim3(2), dim3(96), words * sizeof(int), kProbeSharedStatic, 2}, &probe_shared_kernel, out.data(), words);
    const long long want = 3ll * words * (words - 1) / 2 + words;
    if (out[0] != want || out[2] != want || out[1] != 1 || out[3] != 1) fail("probe_shared_kernel");
  }
  {  // warp: partial masks, widths, __syncwarp exchange in two half-warps at once
    const std::vector<int> cases = {
        kShflXor, -1, 8, 32, 0,  kShflXor, 0x0000ffff, 1, 16, 0,  kShflDown, -1, 3, 8, 0,   kShflUp, 0x00ff00ff, 2, 32, 0,
        kShflIdx, -1, 5, 32, 1,  kShflXor64, -1, 16, 32, 0, kShflXorF64, -1, 2, 32, 0, kBallot, 0x0f0f0f0f, 0x3333, 32, 0,
        kAny, static_cast<int>(0xffff0000u), 20, 32, 0, kAll, -1, 40, 32, 0, kSyncWarp, 0x0000ffff, 3, 32, 0, kSyncWarp, -1, 31, 32, 0};
    const int k = static_cast<int>(cases.size() / kProbeCaseWords);
    std::vector<long long> out(static_cast<size_t>(k * kProbeWarpThreads), -9);
    launch(LaunchConfig{dim3(k), dim3(kProbeWarpThreads), 0, kProbeWarpStatic, 2}, &probe_warp_kernel, cases.data(), out.data());
    // Spot checks; the full table is checked against the device and its definition by the tests.
    if (out[0 * 64 + 0] != 100 + 8 || out[1 * 64 + 3] != 100 + 2 || out[1 * 64 + 20] != -7) fail("probe_warp_kernel shuffles");
    if (out[7 * 64 + 0] != (0x3333 & 0x0f0f0f0f) || out[7 * 64 + 4] != -7) fail("probe_warp_kernel ballot");
    if (out[10 * 64 + 1] != 100 + 4 || out[11 * 64 + 33] != 100 + 32) fail("probe_warp_kernel __syncwarp exchange");
  }
  {  // atomics across blocks (two workers: really concurrent)
    std::vector<int> i32 = {0, 1 << 30, -1, -1};
    std::vector<float> f32 = {0};
    std::vector<unsigned long long> u64 = {0, 0};
    launch(LaunchConfig{dim3(4), dim3(64), 0, 0, 2}, &probe_atomic_kernel, i32.data(), f32.data(), u64.data());
    const int n = 256;
    if (i32[0] != n || i32[1] != 0 || i32[2] != n - 1 || i32[3] < 0 || i32[3] >= n || f32[0] != float(n) ||
        u64[0] != static_cast<unsigned long long>(n) * (n - 1) / 2 || u64[1] != 2ull * n)
      fail("probe_atomic_kernel");
  }
  {  // index
    std::vector<long long> out(2 * 3 * 4 * 6, -1);
    launch(LaunchConfig{dim3(2, 3), dim3(4), 0, 0, 2}, &probe_index_kernel, out.data());
    if (out[(5 * 4 + 3) * 6 + 0] != 1 || out[(5 * 4 + 3) * 6 + 1] != 2 || out[(5 * 4 + 3) * 6 + 3] != 3) fail("probe_index_kernel");
  }
}

int cmd_kernels() {
  const auto t0 = std::chrono::steady_clock::now();
  struct Shape {
    int64_t M, N, D, pad, period;
  };
  // M not a multiple of the block (32), N = 1, D = 1, D not a multiple of the staging width (16),
  // several blocks and tiles, duplicated reals across tiles, padded (strided) rows.
  const Shape shapes[] = {{37, 70, 19, 3, 33}, {64, 33, 16, 0, 1000}, {5, 1, 1, 0, 1000}, {1, 40, 33, 5, 7}};
  for (const Shape& s : shapes) {
    check_project<float, float>("float32", s.M, s.N, s.D, s.pad, s.period, 1 + s.M);
    check_project<double, double>("float64", s.M, s.N, s.D, s.pad, s.period, 2 + s.M);
  }
  check_project<__half, float>("float16", 37, 70, 19, 1, 33, 3);
  check_project<__nv_bfloat16, float>("bfloat16", 37, 70, 19, 0, 33, 4);
  // The tensor-core pipeline: partial blocks and tiles, a split of the reals (merge kernel), N = 1,
  // D = 1, and reals repeated every 3 rows (more copies of the nearest real than the candidate lists
  // hold: the direct scan of overflowed rows).
  using manifpt::cuda::Precision;
  const Shape mma_shapes[] = {{37, 130, 19, 3, 33}, {64, 33, 16, 0, 1000}, {5, 1, 1, 0, 1000}, {3, 70, 9, 1, 3}};
  for (const Shape& s : mma_shapes)
    for (int64_t splits : {1, 2}) {
      check_project_mma<float, Precision::Exact>("float32", s.M, s.N, s.D, s.pad, s.period, splits, 5 + s.M);
      check_project_mma<float, Precision::TF32>("float32", s.M, s.N, s.D, s.pad, s.period, splits, 6 + s.M);
      check_project_mma<float, Precision::BF16>("float32", s.M, s.N, s.D, s.pad, s.period, splits, 7 + s.M);
    }
  check_project_mma<double, Precision::Exact>("float64", 37, 130, 19, 3, 33, 2, 8);
  check_project_mma<double, Precision::TF32>("float64", 37, 130, 19, 3, 33, 1, 9);
  check_project_mma<__half, Precision::Exact>("float16", 37, 130, 19, 1, 33, 2, 10);
  check_project_mma<__half, Precision::TF32>("float16", 37, 70, 19, 1, 33, 1, 11);
  check_project_mma<__nv_bfloat16, Precision::BF16>("bfloat16", 37, 130, 19, 0, 33, 2, 12);
  check_probes();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("race_check kernels: %s, %d failure(s), %.2f s%s\n", g_failures ? "FAILED" : "ok", g_failures, s,
              manifpt::emu::under_thread_sanitizer() ? " (under ThreadSanitizer)" : "");
  return g_failures ? 1 : 0;
}

// The planted race: each thread writes its slot and reads its neighbour's. Without the barrier the
// read of slot t + 1 is unordered with its write by thread t + 1.
template <bool kWithBarrier>
__global__ void planted_kernel(int* out) {
  __shared__ int slot[64];
  const int t = static_cast<int>(threadIdx.x);
  slot[t] = t * t;
  if constexpr (kWithBarrier) __syncthreads();
  out[t] = slot[(t + 1) % 64];
}

int cmd_planted(bool with_barrier) {
  std::vector<int> out(64, -1);
  launch(LaunchConfig{dim3(1), dim3(64), 0, sizeof(int) * 64, 1}, with_barrier ? &planted_kernel<true> : &planted_kernel<false>,
         out.data());
  std::printf("planted kernel (%s barrier) ran\n", with_barrier ? "with" : "without");
  return 0;
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) __syncthreads();  // half of the block never gets here
  out[threadIdx.x] = 1;
}

__global__ void missing_lane_kernel(int* out) {
  const int t = static_cast<int>(threadIdx.x);
  int v = t;
  if (t != 5) v = __shfl_xor_sync(0xffffffffu, v, 1);  // lane 5 is named in the mask but waits below
  __syncthreads();
  out[t] = v;
}

int cmd_deadlock(bool warp) {
  std::vector<int> out(64, 0);
  try {
    launch(LaunchConfig{dim3(1), dim3(32), 0, 0, 1}, warp ? &missing_lane_kernel : &divergent_barrier_kernel, out.data());
  } catch (const manifpt::emu::KernelFault& e) {
    std::printf("%s\n", e.what());
    return 3;
  }
  std::printf("not detected\n");
  return 0;
}

int cmd_limits() {
  int ran = 0;
  auto expect_refused = [&](const char* what, const LaunchConfig& cfg) {
    std::vector<int> out(64, -1);
    try {
      launch(cfg, &planted_kernel<true>, out.data());
      std::printf("%s: launched (should have been refused)\n", what);
      ++ran;
    } catch (const manifpt::emu::LaunchError& e) {
      std::printf("%s: %s\n", what, e.what());
    }
  };
  expect_refused("1025 threads", LaunchConfig{dim3(1), dim3(1025), 0, 256, 1});
  expect_refused("blockDim.z 65", LaunchConfig{dim3(1), dim3(1, 1, 65), 0, 256, 1});
  expect_refused("gridDim.y 65536", LaunchConfig{dim3(1, 65536), dim3(64), 0, 256, 1});
  expect_refused("48 KB dynamic + static", LaunchConfig{dim3(1), dim3(64), 48 * 1024, 256, 1});
  try {
    manifpt::emu::set_max_dynamic_shared_memory(&planted_kernel<true>, 256, 227 * 1024);
    std::printf("opt-in past the device maximum: accepted (should have been refused)\n");
    ++ran;
  } catch (const manifpt::emu::LaunchError& e) {
    std::printf("opt-in past the device maximum: %s\n", e.what());
  }
  return ran ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "kernels";
  if (cmd == "kernels") return cmd_kernels();
  if (cmd == "planted") return cmd_planted(false);
  if (cmd == "planted-fixed") return cmd_planted(true);
  if (cmd == "deadlock-barrier") return cmd_deadlock(false);
  if (cmd == "deadlock-warp") return cmd_deadlock(true);
  if (cmd == "limits") return cmd_limits();
  std::fprintf(stderr, "usage: %s kernels|planted|planted-fixed|deadlock-barrier|deadlock-warp|limits\n", argv[0]);
  return 2;
}
