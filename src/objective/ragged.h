// The flat layout of per-token numbers of a batch of sequences (the engine's Scores.logp, the
// online objectives' inputs): sequence s owns [begin(s), end(s)) of every per-token array.
#pragma once

#include <cstddef>
#include <vector>

namespace rlhf::objective {

struct Ragged {
  std::vector<size_t> offsets{0};  // S + 1 entries, non-decreasing, offsets[0] = 0

  static Ragged from_lengths(const std::vector<size_t>& lengths) {
    Ragged r;
    for (size_t n : lengths) r.offsets.push_back(r.offsets.back() + n);
    return r;
  }
  size_t sequences() const { return offsets.size() - 1; }
  size_t size() const { return offsets.back(); }
  size_t begin(size_t s) const { return offsets[s]; }
  size_t end(size_t s) const { return offsets[s + 1]; }
  size_t length(size_t s) const { return offsets[s + 1] - offsets[s]; }

  // The layout of the sequences `rows`, in that order (a minibatch).
  Ragged select(const std::vector<size_t>& rows) const {
    Ragged r;
    for (size_t s : rows) r.offsets.push_back(r.offsets.back() + length(s));
    return r;
  }
  // The entries of `values` (laid out by *this) that belong to `rows`, in that order.
  template <class T>
  std::vector<T> gather(const std::vector<T>& values, const std::vector<size_t>& rows) const {
    std::vector<T> out;
    for (size_t s : rows) out.insert(out.end(), values.begin() + begin(s), values.begin() + end(s));
    return out;
  }
};

}  // namespace rlhf::objective
