// Line-oriented file access for JSONL datasets: plain, gzip (zlib) or zstd (libzstd), chosen by
// the file's magic bytes (an extension .gz/.zst that contradicts them is an error), streamed in
// fixed-size chunks so that memory never grows with the file. Writers go to "<path>.tmp" and
// are renamed into place by close(), so an interrupted tool never leaves a half-written output.
//
// Not here: JSON parsing of rows (records.h: for_each_jsonl_object) and dataset layouts.
//
// Example:
//   LineReader in("train.jsonl.zst");
//   std::string line;
//   while (in.next(line)) use(in.line_no(), line);
//   JsonlWriter out("clean.jsonl.gz");
//   out.write(nlohmann::ordered_json{{"prompt", "x"}});
//   out.close();
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rlhf {

enum class Compression { none, gzip, zstd };

// Compression named by a path's extension (.gz, .zst; anything else: none).
Compression compression_from_extension(const std::filesystem::path& path);

class LineReader {
 public:
  // Opens `path` (IoError when it cannot be opened; InputError for .bz2/.xz or a magic/extension
  // mismatch). Lines longer than max_line_bytes are not buffered: next() returns them empty with
  // overlong() true, so that the caller can report and skip them.
  explicit LineReader(const std::filesystem::path& path, size_t max_line_bytes = size_t(256) << 20);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next physical line without its '\n' (a trailing '\r' is removed too). False at the end.
  // A corrupt or truncated compressed stream is an InputError naming the file and the line.
  bool next(std::string& line);
  int64_t line_no() const { return line_no_; }  // 1-based number of the line last returned
  bool overlong() const { return overlong_; }
  Compression compression() const { return compression_; }
  const std::filesystem::path& path() const { return path_; }

  struct Source;

 private:
  bool fill();
  std::filesystem::path path_;
  size_t max_line_;
  std::unique_ptr<Source> src_;
  Compression compression_ = Compression::none;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0;
  bool overlong_ = false;
};

class JsonlWriter {
 public:
  // Compression from the extension of `path` (.gz, .zst). Writes to "<path>.tmp".
  explicit JsonlWriter(const std::filesystem::path& path);
  ~JsonlWriter();  // without close(): the temporary file is removed
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  void write(const nlohmann::ordered_json& row);
  void write(const nlohmann::json& row);
  void write_line(std::string_view line);  // `line` must not contain '\n'
  void close();                            // flush, fsync, rename into place
  int64_t lines() const { return lines_; }

  struct Sink;

 private:
  std::filesystem::path path_, tmp_;
  std::unique_ptr<Sink> sink_;
  int64_t lines_ = 0;
  bool closed_ = false;
};

// Byte offset of the first byte that does not start or continue a valid UTF-8 sequence
// (overlong forms, surrogates and code points above U+10FFFF are invalid), or npos.
size_t find_invalid_utf8(std::string_view s);

}  // namespace rlhf
