// Fuzz target: a tokenizer.json (models, pre-tokenizers, normalizers, added tokens, templates),
// then encode and decode of a few fixed texts, including invalid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> texts = {
      "", "Hello world", "  leading and trailing  ", "a<|im_end|>b", "\xc3\xa9\xe4\xb8\x96\xf0\x9f\x98\x80",
      "\xff\xfe invalid \xc3", "1234567 don't", std::string(300, 'x')};
  try {
    const rlhf::Tokenizer tok =
        rlhf::Tokenizer::from_json_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const std::string& text : texts) {
      for (const bool special : {false, true}) {
        try {
          rlhf::EncodeOptions opt;
          opt.add_special_tokens = special;
          const std::vector<int32_t> ids = tok.encode(text, opt);
          tok.decode(ids);
          tok.decode(ids, {.skip_special_tokens = true});
        } catch (const rlhf::InputError&) {  // e.g. a word the vocabulary cannot encode
        }
      }
    }
  } catch (const rlhf::InputError&) {
  }
  return 0;
}
