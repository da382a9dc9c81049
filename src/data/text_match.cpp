// Normalisation, stable hashing and MinHash for dedupe and decontamination.
#include "data/text_match.h"

#include <cmath>
#include <limits>

#include "tensor/error.h"
#include "text/unicode.h"

namespace rlhf {

namespace {
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_ascii_punct(unsigned char c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}
}  // namespace

std::string normalize_text(std::string_view s) {
  bool ascii = true;
  for (unsigned char c : s) ascii = ascii && c < 0x80;
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  auto sep = [&] { pending_space = !out.empty(); };
  auto put = [&](std::string_view bytes) {
    if (pending_space) {
      out += ' ';
      pending_space = false;
    }
    out += bytes;
  };
  if (ascii) {
    for (unsigned char c : s) {
      if (is_space(c) || is_ascii_punct(c)) {
        sep();
        continue;
      }
      const char lower = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      put(std::string_view(&lower, 1));
    }
    return out;
  }
  // NFKC first (full-width forms, ligatures, compatibility spaces), then per code point.
  const std::string n = unicode::nfkc(s);
  size_t i = 0;
  while (i < n.size()) {
    char32_t cp;
    const size_t len = unicode::decode_utf8_char(n, i, &cp);
    const auto cat = unicode::category(cp);
    const bool punct = cat >= unicode::Category::Pc && cat <= unicode::Category::Po;
    if (unicode::is_whitespace(cp) || punct || (cp < 0x80 && is_ascii_punct(static_cast<unsigned char>(cp)))) {
      sep();
    } else if (cp >= 'A' && cp <= 'Z') {
      const char lower = static_cast<char>(cp - 'A' + 'a');
      put(std::string_view(&lower, 1));
    } else {
      put(std::string_view(n).substr(i, len));
    }
    i += len;
  }
  return out;
}

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> w;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) w.push_back(s.substr(i, j - i));
    i = j;
  }
  return w;
}

int64_t count_words(std::string_view s) {
  int64_t n = 0;
  bool in = false;
  for (unsigned char c : s) {
    const bool sp = is_space(c);
    if (!sp && !in) ++n;
    in = !sp;
  }
  return n;
}

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash64(std::string_view s, uint64_t seed) {
  uint64_t h = 0xCBF29CE484222325ull ^ mix64(seed);
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return mix64(h ^ s.size());
}

uint64_t hash_words(const std::vector<std::string_view>& words, size_t b, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  size_t len = 0;
  for (size_t i = b; i < b + n; ++i) {
    if (i > b) {
      h ^= ' ';
      h *= 0x100000001B3ull;
      ++len;
    }
    for (unsigned char c : words[i]) {
      h ^= c;
      h *= 0x100000001B3ull;
    }
    len += words[i].size();
  }
  return mix64(h ^ len);
}

std::vector<uint32_t> minhash_signature(const std::vector<std::string_view>& words, int shingle, int num_perm,
                                        uint64_t seed) {
  RLHF_CHECK(shingle >= 1 && num_perm >= 1, "minhash_signature: shingle and num_perm must be positive");
  if (words.empty()) return {};
  const size_t k = std::min<size_t>(static_cast<size_t>(shingle), words.size());
  std::vector<uint64_t> perm_seed(num_perm);
  for (int p = 0; p < num_perm; ++p) perm_seed[p] = mix64(seed * 0x100000001B3ull + static_cast<uint64_t>(p) + 1);
  std::vector<uint32_t> sig(num_perm, std::numeric_limits<uint32_t>::max());
  for (size_t b = 0; b + k <= words.size(); ++b) {
    const uint64_t h = hash_words(words, b, k);
    for (int p = 0; p < num_perm; ++p) {
      const uint32_t v = static_cast<uint32_t>(mix64(h ^ perm_seed[p]) >> 32);
      if (v < sig[p]) sig[p] = v;
    }
  }
  return sig;
}

double minhash_similarity(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.empty() || a.size() != b.size()) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

void minhash_bands(int num_perm, double threshold, int* bands, int* rows) {
  int best_b = num_perm, best_r = 1;
  double best_t = -1;
  for (int r = 1; r <= num_perm; ++r) {
    if (num_perm % r) continue;
    const int b = num_perm / r;
    const double t = std::pow(1.0 / b, 1.0 / r);
    if (t <= threshold && t > best_t) {
      best_t = t;
      best_b = b;
      best_r = r;
    }
  }
  *bands = best_b;
  *rows = best_r;
}

}  // namespace rlhf
