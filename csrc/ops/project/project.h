#pragma once
// manifpt::project — exact nearest real sample of every fake, and the artifact, in one fused op.
//
// Args:
//   fakes   Tensor[M, *S]  float32 | float64 | float16 | bfloat16, any strides
//   reals   Tensor[N, *S]  same dtype and device, N >= 1
//   tile_m  int            rows of fakes per tile (0 = automatic); tests force small tiles
//   tile_n  int            rows of reals per tile (0 = automatic)
// Returns:
//   artifact Tensor[M, *S] fakes - reals[index], dtype of fakes, contiguous
//   index    Tensor[M]     int64, argmin_j ||fakes[i] - reals[j]||^2, lowest j on ties
//   distance Tensor[M]     float32, that squared distance (evaluated in float64, then rounded)
//
// The flattened dimension is D = prod(S). Memory beyond inputs and outputs is O(tile) plus a small
// candidate list per fake; the M x N distance matrix never exists.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace manifpt {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_cpu(const at::Tensor& fakes, const at::Tensor& reals, int64_t tile_m,
                                                           int64_t tile_n);

// "key=value ..." of the CPU path, cache sizes and blocking for an (M, N, D) float32 call (schema.cpp).
std::string cpu_info(int64_t M, int64_t N, int64_t D);

// Rows the CPU op has scanned directly (float64 over all reals: the slow path) since the process started;
// the counter lives in cpu/rerank.cpp, where the scan is.
int64_t cpu_direct_rows();

// The k-major packing of up to 32 float rows (cpu/pack.h: packed[k][r] = rows[r][k] - mu[k], rows from
// n to width zero), with |row|^2 in float and |row| in float64, by the AVX2 code or the scalar one (tests:
// the two agree bit for bit, and with a reference).
std::tuple<at::Tensor, at::Tensor, at::Tensor> cpu_pack_kmajor(const at::Tensor& rows, const at::Tensor& mu, int64_t width,
                                                               bool avx2);

}  // namespace manifpt
