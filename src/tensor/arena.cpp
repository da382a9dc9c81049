#include "tensor/arena.h"

#include "tensor/error.h"

namespace rlhf {

int Arena::reserve(std::string name, std::vector<int64_t> shape) {
  RLHF_CHECK(!allocated_, "Arena::reserve after allocate: " + name);
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

void Arena::allocate(const Device& device) {
  RLHF_CHECK(!allocated_, "Arena::allocate called twice");
  storage_ = DeviceBuffer<float>(device, static_cast<size_t>(total_));
  allocated_ = true;
}

}  // namespace rlhf
