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
  int32_t count;  // number of live candidates; kOverflow: too many, the row is scanned directly
  Candidate<T> cand[kMaxCandidates];
};

// Adds a real with lower bound `lower` to the row's candidates. When the list is full, candidates
// that the (since lowered) upper bound has ruled out are dropped; if none can be, the row overflows.
template <typename T>
inline void push_candidate(RowState<T>& st, int64_t index, T lower) {
  if (st.count == kOverflow) return;
  if (st.count == kMaxCandidates) {
    int32_t kept = 0;
    for (int32_t k = 0; k < st.count; ++k)
      if (st.cand[k].lower <= st.upper) st.cand[kept++] = st.cand[k];
    st.count = kept;
    if (kept == kMaxCandidates) {
      st.count = kOverflow;
      return;
    }
  }
  st.cand[st.count++] = Candidate<T>{lower, index};
}

}  // namespace manifpt::detail
