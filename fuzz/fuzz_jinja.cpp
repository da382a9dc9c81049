// Fuzz target: a chat template (Jinja lexer, parser and interpreter), rendered with a small
// fixed conversation. The work limits are lowered to keep executions fast; the depth limits stay
// at their defaults, since stack use under ASan is part of what is tested.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/error.h"
#include "text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::json;
  static const json messages = json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi \u00e9\u4e16 <b>"},
    {"role": "assistant", "content": "Hello.", "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"x": 1, "y": [true, null, 2.5]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": ""}
  ])");
  static const json extra = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"strftime_now", "2024-09-26"}};
  rlhf::jinja::Limits limits;
  limits.max_steps = 200'000;
  limits.max_output_bytes = 1 << 20;
  limits.max_string_bytes = 1 << 20;
  limits.max_items = 100'000;
  limits.max_alloc_bytes = 64 << 20;
  try {
    const rlhf::ChatTemplate tmpl =
        rlhf::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz", limits);
    for (const bool add_generation_prompt : {false, true}) {
      try {
        tmpl.render(messages, add_generation_prompt, extra);
      } catch (const rlhf::InputError&) {
      }
    }
  } catch (const rlhf::InputError&) {
  }
  return 0;
}
