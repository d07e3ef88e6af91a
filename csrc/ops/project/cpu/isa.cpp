// CPU feature detection, the registry of packed-panel GEMMs and MANIFPT_CPU_ISA (see isa.h).
// Compiled without any -m flag on purpose.
#include "ops/project/cpu/isa.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ops/project/cpu/kernels.h"

namespace manifpt::detail {

namespace {
// Filled by the gemm_<isa>.cpp files' static initialisers as the module loads (before any call).
std::vector<const PanelGemm*>& registry() {
  static std::vector<const PanelGemm*> r;
  return r;
}

bool cpu_supports_one(const std::string& f) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports takes only literals: one line per feature a kernel may name.
  if (f == "avx2") return __builtin_cpu_supports("avx2");
  if (f == "fma") return __builtin_cpu_supports("fma");
  if (f == "avx512f") return __builtin_cpu_supports("avx512f");
  if (f == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (f == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (f == "avx512dq") return __builtin_cpu_supports("avx512dq");
  TORCH_CHECK(false, "manifpt: a CPU kernel needs the unknown CPU feature '", f, "' (add it to isa.cpp)");
#endif
  return false;
}
}  // namespace

bool register_panel_gemm(const PanelGemm* g) {
  auto& r = registry();
  r.push_back(g);
  std::stable_sort(r.begin(), r.end(), [](const PanelGemm* a, const PanelGemm* b) { return a->preference > b->preference; });
  return true;
}

const std::vector<const PanelGemm*>& panel_gemms() { return registry(); }

bool cpu_supports(const char* features) {
  std::string list(features), f;
  for (size_t i = 0; i <= list.size(); ++i) {
    if (i == list.size() || list[i] == ',') {
      if (!f.empty() && !cpu_supports_one(f)) return false;
      f.clear();
    } else {
      f += list[i];
    }
  }
  return true;
}

bool cpu_has_avx2_fma() { return cpu_supports("avx2,fma"); }

CpuPath cpu_path() {
  static const bool has2 = cpu_has_avx2_fma();
  static const std::vector<bool> runs = [] {  // which registered kernels this CPU can run
    std::vector<bool> v;
    for (const PanelGemm* g : panel_gemms()) v.push_back(cpu_supports(g->needs));
    return v;
  }();
  const auto& all = panel_gemms();
  // The best kernel from position i on that this CPU runs, else BLAS.
  auto best_from = [&](size_t i) -> CpuPath {
    for (; i < all.size(); ++i)
      if (runs[i]) return {Gemm::Panels, all[i], has2};
    return {Gemm::Blas, nullptr, has2};
  };
  const char* env = std::getenv("MANIFPT_CPU_ISA");
  const std::string want = env ? env : "";
  if (want.empty() || want == "auto") return best_from(0);
  for (size_t i = 0; i < all.size(); ++i)
    if (want == all[i]->name) return best_from(i);
  if (want == "blas") return {Gemm::Blas, nullptr, has2};
  if (want == "portable") return {Gemm::Portable, nullptr, false};
  std::string names = "auto";
  for (const PanelGemm* g : all) names += std::string(", ") + g->name;
  TORCH_CHECK(false, "MANIFPT_CPU_ISA must be ", names, ", blas or portable, got '", want, "'");
}

const char* CpuPath::gemm_name() const {
  switch (gemm) {
    case Gemm::Panels: return panel->name;
    case Gemm::Blas: return "blas";
    case Gemm::Portable: return "portable";
  }
  return "?";
}

}  // namespace manifpt::detail
