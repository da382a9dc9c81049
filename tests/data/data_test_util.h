// Helpers for the data tests: a per-test scratch directory, and gzip / zstd files written with
// the zlib and libzstd APIs directly (independent of our writer).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace rlhf::testing {

namespace fs = std::filesystem;

inline fs::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path d = fs::temp_directory_path() /
               ("rlhf_data_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
  fs::create_directories(d);
  return d;
}

inline fs::path write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

inline fs::path write_gzip(const fs::path& p, const std::string& bytes) {
  gzFile g = gzopen(p.c_str(), "wb");
  EXPECT_NE(g, nullptr);
  if (!bytes.empty()) EXPECT_EQ(gzwrite(g, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(g);
  return p;
}

inline std::string zstd_bytes(const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> read_lines(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Runs fn and returns the InputError message ("" when nothing was thrown).
template <typename F>
std::string input_error(F&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace rlhf::testing
