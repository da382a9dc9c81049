// One aligned fp32 allocation carved into named slices (llm.c's "table of slices").
//
// Plan first (reserve each slice with its shape), then allocate once on a device (the backend's
// that runs on it); the table documents every buffer and its size, and makes memory use a number
// we can print. Slices never move.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace rlhf {

struct ArenaSlice {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in floats, a multiple of 16 (64-byte alignment)
  int64_t numel = 0;
};

class Arena {
 public:
  // Reserves a slice; returns its index. Only before allocate().
  int reserve(std::string name, std::vector<int64_t> shape);
  // Allocates (zero-filled) storage for every reserved slice on `device`.
  void allocate(const Device& device);
  const Device& device() const { return storage_.device(); }
  float* data(int slice) { return storage_.data() + slices_[slice].offset; }
  int64_t total_floats() const { return total_; }
  int64_t bytes() const { return total_ * 4; }
  const std::vector<ArenaSlice>& slices() const { return slices_; }

 private:
  std::vector<ArenaSlice> slices_;
  int64_t total_ = 0;
  bool allocated_ = false;
  DeviceBuffer<float> storage_;
};

}  // namespace rlhf
