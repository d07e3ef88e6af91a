// The schema of manifpt::project and the CPU registrations. The CUDA kernel registers itself for the
// CUDA key in project_cuda.cu; the emulated CUDA kernel (tests) in project_emulated.cpp.
#include <torch/library.h>

#include "ops/project/project.h"

TORCH_LIBRARY(manifpt, m) {
  m.def(
      "project(Tensor fakes, Tensor reals, int tile_m=0, int tile_n=0) -> (Tensor artifact, Tensor index, Tensor distance)");
  // What the CPU kernel would run for an (M, N, D) float32 call on this machine: the ISA path taken,
  // the cache sizes read at run time and the blocking derived from them (benchmarks print it).
  m.def("_cpu_info(int M, int N, int D) -> str", &manifpt::cpu_info);
  // Rows the CPU op has scanned directly since the process started (tests; manifpt_ext.cpu_direct_rows):
  // the slow path of rows whose full candidate list cannot prove its best (duplicates, ties).
  m.def("_cpu_direct_rows() -> int", &manifpt::cpu_direct_rows);
  // The CPU packing of float rows into the panel GEMMs' k-major layout, AVX2 or scalar (tests).
  m.def("_cpu_pack_kmajor(Tensor rows, Tensor mu, int width, bool avx2) -> (Tensor packed, Tensor sqnorm, Tensor norm)",
        &manifpt::cpu_pack_kmajor);
}

TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("project", &manifpt::project_cpu); }
