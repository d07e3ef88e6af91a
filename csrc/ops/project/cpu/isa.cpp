// CPU feature detection and MANIFPT_CPU_ISA (see isa.h). Compiled without any -m flag on purpose.
#include "ops/project/cpu/isa.h"

#include <c10/util/Exception.h>

#include <cstdlib>

namespace manifpt::detail {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

CpuPath cpu_path() {
  static const bool has512 = cpu_has_avx512f(), has2 = cpu_has_avx2_fma();
  const Gemm best2 = has2 ? Gemm::Avx2 : Gemm::Blas;
  const char* env = std::getenv("MANIFPT_CPU_ISA");
  const std::string want = env ? env : "";
  if (want.empty() || want == "auto" || want == "avx512") return {has512 && has2 ? Gemm::Avx512 : best2, has2};
  if (want == "avx2") return {best2, has2};
  if (want == "blas") return {Gemm::Blas, has2};
  TORCH_CHECK(want == "portable", "MANIFPT_CPU_ISA must be auto, avx512, avx2, blas or portable, got '", want, "'");
  return {Gemm::Portable, false};
}

const char* gemm_name(Gemm g) {
  switch (g) {
    case Gemm::Avx512: return "avx512";
    case Gemm::Avx2: return "avx2";
    case Gemm::Blas: return "blas";
    case Gemm::Portable: return "portable";
  }
  return "?";
}

}  // namespace manifpt::detail
