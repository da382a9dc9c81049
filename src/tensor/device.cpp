#include "tensor/device.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace rlhf {

namespace {

class HostDevice final : public Device {
 public:
  const char* name() const override { return "host"; }
  void* allocate(size_t bytes) const override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    return p;
  }
  void release(void* p) const override { std::free(p); }
  bool host_visible() const override { return true; }
  void copy_to_device(void* dst, const void* src, size_t bytes) const override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) const override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) const override { std::memcpy(dst, src, bytes); }
};

}  // namespace

const Device& host_device() {
  static const HostDevice device;
  return device;
}

}  // namespace rlhf
