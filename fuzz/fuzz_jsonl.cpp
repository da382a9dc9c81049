// Fuzz target: a JSONL dataset file (plain, gzip or zstd by magic bytes; lines, BOM, UTF-8,
// JSON), read in strict and in skip mode, each row through every row parser (SFT, preference,
// unpaired, ranked, prompt).
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "data/records.h"
#include "fuzz/fuzz_common.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = rlhf::fuzz::write_temp("data.jsonl", data, size);
  for (const bool skip : {false, true}) {
    rlhf::ReadOptions opt;
    opt.skip_bad_rows = skip;
    opt.hh_as_messages = skip;
    opt.score_field = skip ? "mean" : "";
    opt.max_line_bytes = 1 << 16;
    rlhf::ReadReport report;
    try {
      rlhf::for_each_jsonl_object(path, opt, report, [&](int64_t, const nlohmann::json& row) {
        auto attempt = [&](auto parse) {
          try {
            parse(row, opt, report);
          } catch (const rlhf::InputError&) {
          }
        };
        attempt(rlhf::parse_sft_row);
        attempt(rlhf::parse_preference_row);
        attempt(rlhf::parse_unpaired_row);
        attempt(rlhf::parse_ranked_row);
        attempt(rlhf::parse_prompt_row);
      });
    } catch (const rlhf::InputError&) {
    }
  }
  return 0;
}
