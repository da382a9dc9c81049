// Tokenizer encode throughput: tokens/s and MB/s of Tokenizer::encode over a corpus file, one
// call per line (no special tokens), on one thread — the same work bench/tokenizers_encode.py
// times for Hugging Face `tokenizers`. The word cache starts empty, as in a fresh process.
//
//   usage: tokenizer_encode --corpus FILE [--tokenizer DIR] [--passes 1]
//
// Prints one JSON line per pass: bytes, lines, tokens, seconds, tokens_per_s, mb_per_s and an
// FNV-1a checksum of all ids (the Python side prints the same, so the two runs can be checked
// for identical output).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string corpus, tok_dir = "tests/fixtures/text/tokenizers/llama3";
  int passes = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--corpus" && i + 1 < argc) corpus = argv[++i];
    else if (a == "--tokenizer" && i + 1 < argc) tok_dir = argv[++i];
    else if (a == "--passes" && i + 1 < argc) passes = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: tokenizer_encode --corpus FILE [--tokenizer DIR] [--passes N]\n");
      return 2;
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "tokenizer_encode: --corpus FILE is required (bench/run_tokenizer_bench.sh makes one)\n");
    return 2;
  }
  try {
    const rlhf::Tokenizer tok = rlhf::Tokenizer::load(tok_dir);
    std::ifstream f(corpus, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "tokenizer_encode: cannot open %s\n", corpus.c_str());
      return 1;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    std::vector<std::string_view> lines;
    for (size_t b = 0; b < text.size();) {
      size_t e = text.find('\n', b);
      if (e == std::string::npos) e = text.size();
      lines.emplace_back(text.data() + b, e - b);
      b = e + 1;
    }
    for (int p = 0; p < passes; ++p) {
      uint64_t tokens = 0, fnv = 0xcbf29ce484222325ull;
      const auto t0 = clk::now();
      for (std::string_view line : lines) {
        const std::vector<int32_t> ids = tok.encode(line);
        tokens += ids.size();
        for (int32_t id : ids) fnv = (fnv ^ static_cast<uint32_t>(id)) * 0x100000001b3ull;
      }
      const double s = std::chrono::duration<double>(clk::now() - t0).count();
      std::printf(
          "{\"impl\": \"rlhf.cpp\", \"pass\": %d, \"tokenizer\": \"%s\", \"bytes\": %zu, \"lines\": %zu, "
          "\"tokens\": %llu, \"seconds\": %.3f, \"tokens_per_s\": %.0f, \"mb_per_s\": %.2f, \"ids_fnv1a\": \"%016llx\"}\n",
          p, tok_dir.c_str(), text.size(), lines.size(), static_cast<unsigned long long>(tokens), s, tokens / s,
          text.size() / s / 1e6, static_cast<unsigned long long>(fnv));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
