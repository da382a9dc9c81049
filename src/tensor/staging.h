// The one place where a pass's host data meets a device: the kernels' inputs that live on the
// host (a batch's token ids and positions, row indices, loss gradients) go in through stage(),
// and their host outputs (log-probs, head values, logits) come back through output() and
// download(). On a host-visible device these are the host memory itself and download() is a
// no-op, so the CPU pays nothing; elsewhere they are copies kept until the next begin_pass().
//
// Example (one forward):
//   io.begin_pass(backend.device());
//   backend.embedding_forward(x, io.stage(batch.tokens), ...);
//   float* logp = io.output(scores.logp.data(), n);
//   backend.logprob_forward(logp, ...);
//   io.download(scores.logp.data(), logp, n);
#pragma once

#include <cstddef>
#include <vector>

#include "tensor/device.h"

namespace rlhf {

class Staging {
 public:
  void begin_pass(const Device& device) {
    device_ = &device;
    buffers_.clear();
  }
  template <typename T>
  const T* stage(const T* host, size_t n) {
    if (device_->host_visible()) return host;
    T* copy = allocate<T>(n);
    device_->copy_to_device(copy, host, n * sizeof(T));
    return copy;
  }
  template <typename T>
  const T* stage(const std::vector<T>& host) {
    return stage(host.data(), host.size());
  }
  template <typename T>
  T* output(T* host, size_t n) {
    return device_->host_visible() ? host : allocate<T>(n);
  }
  template <typename T>
  void download(T* host, const T* device, size_t n) const {
    if (device != host) device_->copy_to_host(host, device, n * sizeof(T));
  }

 private:
  template <typename T>
  T* allocate(size_t n) {
    buffers_.emplace_back(*device_, n * sizeof(T));
    return reinterpret_cast<T*>(buffers_.back().data());
  }
  const Device* device_ = &host_device();
  std::vector<DeviceBuffer<std::byte>> buffers_;
};

}  // namespace rlhf
