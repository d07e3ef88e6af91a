#pragma once
// Per-fake state of the candidate search: an upper bound on the exact minimum and a short list of
// reals that may still attain it (see candidates.cpp for the invariants).
#include <cstdint>

namespace manifpt::detail {

template <typename T>
struct Candidate {
  T lower;  // a lower bound on the exact distance of this real
  int64_t index;
};
constexpr int kMaxCandidates = 16;
constexpr int32_t kOverflow = -1;

// T is the working type of the approximate distances: float for float32/float16/bfloat16 inputs,
// double for float64 inputs.
template <typename T>
struct RowState {
  T upper;        // an upper bound on the exact minimum distance of the row
  T evicted;      // the smallest lower bound of a real dropped from a full list (+inf: none dropped)
  int32_t count;  // number of live candidates; kOverflow: no usable bound, the row is scanned directly
  Candidate<T> cand[kMaxCandidates];
};

// Adds a real with lower bound `lower` to the row's candidates. When the list is full, candidates
// that the (since lowered) upper bound has ruled out are dropped first; if none can be, the one with
// the largest lower bound goes (the new real or a listed one) and `evicted` keeps the smallest such
// bound. The re-rank then knows its answer is exact when the best listed real is strictly nearer than
// `evicted` (no dropped real can reach it, let alone tie it), and scans the row directly only if not.
// Why not give up at once: a full list used to send the row to the direct float64 scan of all N reals.
// At D = 12288 one such row costs 0.16 s on one core, and random data has one in a few thousand rows
// with 17+ reals inside the error window (benchmarks/RESULTS.md): a tenth of the whole op's time.
template <typename T>
inline void push_candidate(RowState<T>& st, int64_t index, T lower) {
  if (st.count == kOverflow) return;
  if (st.count == kMaxCandidates) {
    int32_t kept = 0;
    for (int32_t k = 0; k < st.count; ++k)
      if (st.cand[k].lower <= st.upper) st.cand[kept++] = st.cand[k];
    st.count = kept;
    if (kept == kMaxCandidates) {
      int32_t worst = 0;
      for (int32_t k = 1; k < kept; ++k)
        if (st.cand[k].lower > st.cand[worst].lower) worst = k;
      if (!(lower < st.cand[worst].lower)) {  // the new real is the worst: drop it
        st.evicted = lower < st.evicted ? lower : st.evicted;
        return;
      }
      st.evicted = st.cand[worst].lower < st.evicted ? st.cand[worst].lower : st.evicted;
      st.cand[worst] = Candidate<T>{lower, index};
      return;
    }
  }
  st.cand[st.count++] = Candidate<T>{lower, index};
}

}  // namespace manifpt::detail
