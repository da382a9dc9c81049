// Device buffers and the staging of host data, on the host device and on a stand-in for a device
// the host cannot read (host memory that reports itself so and counts the copies made to it).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "tensor/device.h"
#include "tensor/staging.h"

namespace rlhf {
namespace {

class DiscreteDevice final : public Device {
 public:
  const char* name() const override { return "discrete"; }
  void* allocate(size_t bytes) const override { return host_device().allocate(bytes); }
  void release(void* p) const override { host_device().release(p); }
  bool host_visible() const override { return false; }
  void copy_to_device(void* dst, const void* src, size_t bytes) const override {
    ++uploads;
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) const override {
    ++downloads;
    std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) const override { std::memcpy(dst, src, bytes); }
  mutable int uploads = 0, downloads = 0;
};

TEST(DeviceBuffer, ZeroFilledAlignedAndCopiedInPlace) {
  DeviceBuffer<float> a(host_device(), 100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  for (float x : a) EXPECT_EQ(x, 0.0f);
  DeviceBuffer<float> b(host_device(), 100);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i);
  const float* where = a.data();
  a = b;  // same size: the contents move, the memory stays
  EXPECT_EQ(a.data(), where);
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::vector<float>(a)[7], 7.0f);
}

TEST(DeviceBuffer, MovesBetweenDevices) {
  DiscreteDevice discrete;
  DeviceBuffer<float> h(host_device(), 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = 1.5f * static_cast<float>(i);
  const DeviceBuffer<float> d = h.on(discrete);
  EXPECT_EQ(&d.device(), &discrete);
  EXPECT_EQ(discrete.uploads, 1);
  EXPECT_EQ(d.to_host(), h.to_host());
  EXPECT_EQ(discrete.downloads, 1);
}

TEST(Staging, HostDevicePassesHostMemoryThrough) {
  Staging io;
  io.begin_pass(host_device());
  const std::vector<int32_t> ids = {3, 1, 4};
  EXPECT_EQ(io.stage(ids), ids.data());
  std::vector<float> out(4);
  EXPECT_EQ(io.output(out.data(), out.size()), out.data());
}

TEST(Staging, OtherDevicesGetCopiesBothWays) {
  DiscreteDevice discrete;
  Staging io;
  io.begin_pass(discrete);
  const std::vector<int32_t> ids = {3, 1, 4};
  const int32_t* staged = io.stage(ids);
  EXPECT_NE(staged, ids.data());
  EXPECT_EQ(std::vector<int32_t>(staged, staged + 3), ids);
  std::vector<float> out(4, 0.0f);
  float* device_out = io.output(out.data(), out.size());
  EXPECT_NE(device_out, out.data());
  for (int i = 0; i < 4; ++i) device_out[i] = static_cast<float>(i) + 0.5f;
  io.download(out.data(), device_out, out.size());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(discrete.uploads, 1);
  EXPECT_EQ(discrete.downloads, 1);
}

}  // namespace
}  // namespace rlhf
