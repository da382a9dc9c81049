// Strict JSON parsing for untrusted model files (safetensors headers, shard indexes, config.json).
//
// On top of nlohmann::json's RFC 8259 parser this rejects what Python's `json` and nlohmann accept
// silently: a duplicate key in any object (both keep the last value, which lets two readers of one
// file disagree — TOB-SFTN-7) and nesting deeper than `kMaxJsonDepth`. Parse errors become
// InputError with the file, the byte offset in the file, line and column.
//
// Deliberately not here: schema checks — callers validate the shape of what comes back.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/error.h"

namespace rlhf::detail {

inline constexpr int kMaxJsonDepth = 128;

// Byte offset of the first byte of `s` that is not well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or npos when all of it is.
inline size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }  // U+D800..U+DFFF are surrogates
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }  // nothing above U+10FFFF
    else return i;
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Parses `text`, which starts at byte `base_offset` of the file named `source`.
inline nlohmann::json parse_json_strict(std::string_view text, const std::string& source,
                                        int64_t base_offset = 0) {
  using json = nlohmann::json;
  // One key set per open object; `last_key` names the key whose value is being parsed, so that a
  // duplicate can say where it is.
  std::vector<std::set<std::string>> keys;
  std::vector<std::string> last_key;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (depth > kMaxJsonDepth)
      throw InputError(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                       " levels");
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        last_key.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        last_key.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second) {
          std::string where;
          if (last_key.size() >= 2) where = " inside \"" + last_key[last_key.size() - 2] + "\"";
          throw InputError(source + ": duplicate key \"" + k + "\"" + where +
                           " (a JSON object must not repeat a key)");
        }
        last_key.back() = k;
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based: the last character read, or size+1 at the end of the input.
    size_t off = e.byte > 0 ? e.byte - 1 : 0;
    if (off > text.size()) off = text.size();
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off; ++i) {
      if (text[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 7: ".
    if (auto p = what.find("parse error"); p != std::string::npos) {
      if (auto q = what.find(": ", p); q != std::string::npos) what = what.substr(q + 2);
    }
    throw InputError(source + ": invalid JSON at byte offset " +
                     std::to_string(base_offset + static_cast<int64_t>(off)) + " (line " +
                     std::to_string(line) + ", column " + std::to_string(col) + "): " + what);
  } catch (const json::out_of_range& e) {
    // A number beyond a double's range (1e600): nlohmann reports no position for it.
    throw InputError(source + ": invalid JSON: " + e.what());
  }
}

// Short description of a JSON value for error messages: its text, cut to `max_len` characters.
inline std::string json_excerpt(const nlohmann::json& v, size_t max_len = 60) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_len) {
    size_t cut = max_len - 3;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole chars
    s = s.substr(0, cut) + "...";
  }
  return s;
}

}  // namespace rlhf::detail
