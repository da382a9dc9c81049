// Shared by the fuzz targets (fuzz/run.sh). A target feeds its input to one parser; an
// InputError is the parser's answer to bad input and is expected, while any other exception, a
// crash, a sanitizer report, a leak or a timeout is a finding. Inputs that must be files go to
// a private temporary directory, removed at exit.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace rlhf::fuzz {

inline const std::filesystem::path& temp_dir() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "rlhf-fuzz-XXXXXX").string();
    if (!mkdtemp(pattern.data())) std::abort();
    return std::filesystem::path(pattern);
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

// Writes the input to temp_dir()/name and returns that path.
inline std::filesystem::path write_temp(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path path = temp_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
  return path;
}

}  // namespace rlhf::fuzz
