// Where a backend's buffers live, and the buffers themselves.
//
// A Device allocates and frees the memory its kernels read and write, and copies between it and
// the host. The CPU and reference backends share host_device(): host memory, so the copies are
// plain memcpy and callers that see host_visible() read the buffers directly (the parameters'
// checkpointing, initialisation and the data-parallel all-reduce do). A device whose memory the
// host cannot touch (a GPU) answers host_visible() false, and such callers must copy first.
//
// DeviceBuffer<T> owns n zero-filled elements on one device. It keeps the container interface
// the code had when these buffers were std::vectors (data, size, [], begin/end, ==, a copy out as
// std::vector), which is valid on host-visible devices only; data() is always the device pointer
// the kernels take.
//
// Example:
//   DeviceBuffer<float> g(host_device(), n);   // n zeros, 64-byte aligned
//   backend.scale_inplace(g.data(), 0.5f, n);
//   std::vector<float> copy = g;               // host copy
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace rlhf {

class Device {
 public:
  virtual ~Device() = default;
  virtual const char* name() const = 0;
  // bytes of zero-filled memory, 64-byte aligned (never null; bytes may be 0). Throws bad_alloc.
  virtual void* allocate(size_t bytes) const = 0;
  virtual void release(void* p) const = 0;
  virtual bool host_visible() const = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) const = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) const = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) const = 0;  // within the device
};

// Host memory (aligned_alloc), for the backends that run on the CPU.
const Device& host_device();

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const Device& device, size_t n)
      : device_(&device), data_(static_cast<T*>(device.allocate(n * sizeof(T)))), size_(n) {}
  DeviceBuffer(const DeviceBuffer& o) : DeviceBuffer(*o.device_, o.size_) { copy_from(o); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  // Copies the contents into this buffer's memory (which stays where it is, so pointers into it
  // stay valid) when the sizes match; else this becomes a copy on this buffer's device.
  DeviceBuffer& operator=(const DeviceBuffer& o) {
    if (this == &o) return *this;
    if (size_ != o.size_) {
      DeviceBuffer fresh(*device_, o.size_);
      swap(fresh);
    }
    copy_from(o);
    return *this;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) device_->release(data_);
  }

  const Device& device() const { return *device_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t bytes() const { return size_ * sizeof(T); }

  // Host access (host-visible devices only).
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

  // A copy of the contents on the host (any device).
  std::vector<T> to_host() const {
    std::vector<T> out(size_);
    if (size_ > 0) device_->copy_to_host(out.data(), data_, bytes());
    return out;
  }
  operator std::vector<T>() const { return to_host(); }
  // The same contents on another device.
  DeviceBuffer on(const Device& device) const {
    DeviceBuffer out(device, size_);
    if (size_ > 0) device.copy_to_device(out.data_, to_host().data(), bytes());
    return out;
  }

  friend bool operator==(const DeviceBuffer& a, const DeviceBuffer& b) { return a.to_host() == b.to_host(); }
  friend bool operator==(const DeviceBuffer& a, const std::vector<T>& b) { return a.to_host() == b; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  void copy_from(const DeviceBuffer& o) {
    if (size_ == 0) return;
    if (device_->host_visible() && o.device_->host_visible())
      std::copy_n(o.data_, size_, data_);
    else
      device_->copy_to_device(data_, o.to_host().data(), bytes());
  }

  const Device* device_ = &host_device();
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace rlhf
