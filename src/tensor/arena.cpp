#include "tensor/arena.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "tensor/error.h"

namespace rlhf {

int Arena::reserve(std::string name, std::vector<int64_t> shape) {
  RLHF_CHECK(!base_, "Arena::reserve after allocate: " + name);
  int64_t n = 1;
  for (int64_t d : shape) {
    RLHF_CHECK(d >= 0, "negative dimension in slice " + name);
    n *= d;
  }
  ArenaSlice s{std::move(name), std::move(shape), total_, n};
  total_ += (n + 15) / 16 * 16;
  slices_.push_back(std::move(s));
  return static_cast<int>(slices_.size()) - 1;
}

void Arena::allocate() {
  RLHF_CHECK(!base_, "Arena::allocate called twice");
  size_t bytes = static_cast<size_t>(total_ > 0 ? total_ : 16) * sizeof(float);
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  base_.reset(static_cast<float*>(p));
}

void Arena::FreeDeleter::operator()(float* p) const { std::free(p); }

}  // namespace rlhf
