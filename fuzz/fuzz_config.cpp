// Fuzz target: a model's config.json, loaded from a file as the CLI loads it (strict JSON:
// duplicate keys, then every field's type and range), and written back.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_common.h"
#include "model/config.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = rlhf::fuzz::write_temp("config.json", data, size);
  try {
    const rlhf::ModelConfig c = rlhf::ModelConfig::load(path);
    rlhf::ModelConfig::from_json(c.to_json(false), "round trip");
  } catch (const rlhf::InputError&) {
  }
  return 0;
}
