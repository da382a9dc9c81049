// Fuzz target: a .safetensors file (header length, JSON header, offsets, dtypes), opened as a
// file is in practice (memory-mapped), then every F32/F16/BF16 tensor converted to fp32.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "model/safetensors.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = rlhf::fuzz::write_temp("model.safetensors", data, size);
  try {
    const auto file = rlhf::SafetensorsFile::open(path);
    for (const auto& [name, t] : file->tensors()) {
      if (t.numel() > (int64_t{1} << 20)) continue;
      std::vector<float> out(static_cast<size_t>(t.numel()));
      try {
        rlhf::convert_to_f32(t, out.data(), name);
      } catch (const rlhf::InputError&) {  // a dtype that is not F32/F16/BF16
      }
    }
  } catch (const rlhf::InputError&) {
  }
  return 0;
}
