// Streaming JSONL: line reader over plain / gzip / zstd files, compressed atomic writer, and the
// per-line JSON checks of docs/reliability.md test 21 (BOM, NUL, UTF-8, JSON syntax, object rows).
#include "data/jsonl.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "data/records.h"
#include "tensor/error.h"

namespace rlhf {

namespace fs = std::filesystem;

namespace {

constexpr size_t kChunk = size_t(1) << 16;

std::string ext_lower(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::gzip: return "gzip";
    case Compression::zstd: return "zstd";
    default: return "plain";
  }
}

}  // namespace

Compression compression_from_extension(const fs::path& path) {
  const std::string e = ext_lower(path);
  if (e == ".gz") return Compression::gzip;
  if (e == ".zst" || e == ".zstd") return Compression::zstd;
  return Compression::none;
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte without a lead, 0xC0/0xC1 (overlong) or 0xF5..0xFF
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Reading

struct LineReader::Source {
  virtual ~Source() = default;
  // Appends up to kChunk decoded bytes to `out`; returns false at the end of the data.
  virtual bool read(std::string& out) = 0;
};

namespace {

struct PlainSource : LineReader::Source {
  FILE* f;
  fs::path path;
  PlainSource(FILE* file, fs::path p) : f(file), path(std::move(p)) {}
  ~PlainSource() override { std::fclose(f); }
  bool read(std::string& out) override {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const size_t got = std::fread(out.data() + old, 1, kChunk, f);
    out.resize(old + got);
    if (got == 0 && std::ferror(f)) throw IoError(path.string() + ": read error: " + std::strerror(errno));
    return got > 0;
  }
};

struct GzipSource : LineReader::Source {
  gzFile g;
  fs::path path;
  GzipSource(gzFile file, fs::path p) : g(file), path(std::move(p)) {}
  ~GzipSource() override { gzclose(g); }
  bool read(std::string& out) override {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const int got = gzread(g, out.data() + old, static_cast<unsigned>(kChunk));
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(g, &errnum);
      out.resize(old);
      throw InputError(path.string() + ": corrupt gzip data: " + (msg ? msg : "unknown error"));
    }
    out.resize(old + static_cast<size_t>(got));
    if (got == 0) {
      int errnum = 0;
      const char* msg = gzerror(g, &errnum);
      if (errnum != Z_OK && errnum != Z_STREAM_END)
        throw InputError(path.string() + ": corrupt or truncated gzip data: " + (msg ? msg : "unknown error"));
    }
    return got > 0;
  }
};

struct ZstdSource : LineReader::Source {
  FILE* f;
  fs::path path;
  ZSTD_DStream* ds;
  std::string in;
  ZSTD_inBuffer ib{nullptr, 0, 0};
  size_t last_ret = 0;  // 0 when the last frame is complete
  bool in_eof = false;
  ZstdSource(FILE* file, fs::path p) : f(file), path(std::move(p)), ds(ZSTD_createDStream()) {
    if (!ds) throw IoError(path.string() + ": cannot allocate a zstd decoder");
    ZSTD_initDStream(ds);
    in.resize(ZSTD_DStreamInSize());
  }
  ~ZstdSource() override {
    ZSTD_freeDStream(ds);
    std::fclose(f);
  }
  bool read(std::string& out) override {
    const size_t old = out.size();
    out.resize(old + kChunk);
    ZSTD_outBuffer ob{out.data() + old, kChunk, 0};
    while (ob.pos == 0) {
      if (ib.pos == ib.size) {
        if (in_eof) break;
        const size_t got = std::fread(in.data(), 1, in.size(), f);
        if (got == 0) {
          if (std::ferror(f)) throw IoError(path.string() + ": read error: " + std::strerror(errno));
          in_eof = true;
          break;
        }
        ib = {in.data(), got, 0};
      }
      last_ret = ZSTD_decompressStream(ds, &ob, &ib);
      if (ZSTD_isError(last_ret))
        throw InputError(path.string() + ": corrupt zstd data: " + ZSTD_getErrorName(last_ret));
    }
    out.resize(old + ob.pos);
    if (ob.pos == 0 && in_eof && last_ret != 0)
      throw InputError(path.string() + ": truncated zstd data (the last frame is incomplete)");
    return ob.pos > 0;
  }
};

}  // namespace

LineReader::LineReader(const fs::path& path, size_t max_line_bytes) : path_(path), max_line_(max_line_bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(path.string() + ": cannot open: " + std::strerror(errno));
  unsigned char magic[6] = {0, 0, 0, 0, 0, 0};
  const size_t got = std::fread(magic, 1, sizeof magic, f);
  std::rewind(f);
  Compression by_magic = Compression::none;
  if (got >= 2 && magic[0] == 0x1F && magic[1] == 0x8B) by_magic = Compression::gzip;
  if (got >= 4 && magic[0] == 0x28 && magic[1] == 0xB5 && magic[2] == 0x2F && magic[3] == 0xFD)
    by_magic = Compression::zstd;
  const bool bz2 = got >= 3 && std::memcmp(magic, "BZh", 3) == 0;
  const bool xz = got >= 6 && magic[0] == 0xFD && std::memcmp(magic + 1, "7zXZ", 4) == 0 && magic[5] == 0;
  const std::string e = ext_lower(path);
  if (bz2 || xz || e == ".bz2" || e == ".xz") {
    std::fclose(f);
    throw InputError(path.string() + ": " + (bz2 || e == ".bz2" ? "bzip2" : "xz") +
                     " files are not supported (use plain, .gz or .zst; e.g. decompress with " +
                     (bz2 || e == ".bz2" ? "bunzip2" : "unxz") + ")");
  }
  const Compression by_ext = compression_from_extension(path);
  if (by_ext != Compression::none && by_magic != by_ext) {
    std::fclose(f);
    throw InputError(path.string() + ": the extension says " + compression_name(by_ext) +
                     " but the file does not start with the " + compression_name(by_ext) + " magic bytes");
  }
  compression_ = by_magic;
  if (compression_ == Compression::gzip) {
    const int fd = dup(fileno(f));
    std::fclose(f);
    gzFile g = fd >= 0 ? gzdopen(fd, "rb") : nullptr;
    if (!g) {
      if (fd >= 0) ::close(fd);
      throw IoError(path.string() + ": cannot open as gzip");
    }
    gzbuffer(g, 1 << 17);
    src_ = std::make_unique<GzipSource>(g, path);
  } else if (compression_ == Compression::zstd) {
    src_ = std::make_unique<ZstdSource>(f, path);
  } else {
    src_ = std::make_unique<PlainSource>(f, path);
  }
}

LineReader::~LineReader() = default;

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  try {
    if (!src_->read(buf_)) eof_ = true;
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " (after line " + std::to_string(line_no_) + ")");
  }
  return !eof_;
}

bool LineReader::next(std::string& line) {
  overlong_ = false;
  size_t scanned = 0;  // bytes of the current line already searched for '\n'
  bool discarding = false;
  for (;;) {
    const size_t nl = buf_.find('\n', pos_ + scanned);
    if (nl != std::string::npos) {
      ++line_no_;
      if (discarding || nl - pos_ > max_line_) {
        overlong_ = true;
        line.clear();
      } else {
        line.assign(buf_, pos_, nl - pos_);
        if (!line.empty() && line.back() == '\r') line.pop_back();
      }
      pos_ = nl + 1;
      return true;
    }
    if (buf_.size() - pos_ > max_line_) {
      // Too long to buffer: drop what we have and skip to the next newline.
      discarding = true;
      buf_.clear();
      pos_ = 0;
    }
    scanned = buf_.size() - pos_;
    if (!fill()) {  // fill() moves the unread bytes to the front: pos_ becomes 0
      if (buf_.size() == pos_ && !discarding) return false;
      ++line_no_;  // last line without a trailing newline
      if (discarding || buf_.size() - pos_ > max_line_) {
        overlong_ = true;
        line.clear();
      } else {
        line.assign(buf_, pos_, std::string::npos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
      }
      buf_.clear();
      pos_ = 0;
      return true;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

struct JsonlWriter::Sink {
  virtual ~Sink() = default;
  virtual void write(const char* data, size_t n) = 0;
  virtual void finish() = 0;  // flush everything and fsync
};

namespace {

void fsync_file(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw IoError(p.string() + ": cannot reopen for fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError(p.string() + ": fsync failed: " + std::strerror(errno));
}

struct PlainSink : JsonlWriter::Sink {
  FILE* f;
  fs::path path;
  PlainSink(const fs::path& p) : path(p) {
    f = std::fopen(p.c_str(), "wb");
    if (!f) throw IoError(p.string() + ": cannot create: " + std::strerror(errno));
  }
  ~PlainSink() override {
    if (f) std::fclose(f);
  }
  void write(const char* data, size_t n) override {
    if (std::fwrite(data, 1, n, f) != n) throw IoError(path.string() + ": write failed: " + std::strerror(errno));
  }
  void finish() override {
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)
      throw IoError(path.string() + ": flush failed: " + std::strerror(errno));
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) throw IoError(path.string() + ": close failed: " + std::strerror(errno));
  }
};

struct GzipSink : JsonlWriter::Sink {
  gzFile g;
  fs::path path;
  GzipSink(const fs::path& p) : path(p) {
    g = gzopen(p.c_str(), "wb6");
    if (!g) throw IoError(p.string() + ": cannot create");
  }
  ~GzipSink() override {
    if (g) gzclose(g);
  }
  void write(const char* data, size_t n) override {
    while (n > 0) {
      const unsigned part = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
      if (gzwrite(g, data, part) != static_cast<int>(part)) {
        int errnum = 0;
        throw IoError(path.string() + ": write failed: " + gzerror(g, &errnum));
      }
      data += part;
      n -= part;
    }
  }
  void finish() override {
    const int rc = gzclose(g);
    g = nullptr;
    if (rc != Z_OK) throw IoError(path.string() + ": close failed (zlib error " + std::to_string(rc) + ")");
    fsync_file(path);
  }
};

struct ZstdSink : JsonlWriter::Sink {
  FILE* f;
  fs::path path;
  ZSTD_CStream* cs;
  std::string out;
  ZstdSink(const fs::path& p) : path(p), cs(ZSTD_createCStream()) {
    f = std::fopen(p.c_str(), "wb");
    if (!f || !cs) throw IoError(p.string() + ": cannot create: " + std::strerror(errno));
    ZSTD_initCStream(cs, 3);
    out.resize(ZSTD_CStreamOutSize());
  }
  ~ZstdSink() override {
    ZSTD_freeCStream(cs);
    if (f) std::fclose(f);
  }
  void drain(ZSTD_outBuffer& ob) {
    if (ob.pos && std::fwrite(out.data(), 1, ob.pos, f) != ob.pos)
      throw IoError(path.string() + ": write failed: " + std::strerror(errno));
    ob.pos = 0;
  }
  void write(const char* data, size_t n) override {
    ZSTD_inBuffer ib{data, n, 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      const size_t r = ZSTD_compressStream(cs, &ob, &ib);
      if (ZSTD_isError(r)) throw IoError(path.string() + ": zstd error: " + ZSTD_getErrorName(r));
      drain(ob);
    }
  }
  void finish() override {
    size_t r;
    do {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      r = ZSTD_endStream(cs, &ob);
      if (ZSTD_isError(r)) throw IoError(path.string() + ": zstd error: " + ZSTD_getErrorName(r));
      drain(ob);
    } while (r != 0);
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)
      throw IoError(path.string() + ": flush failed: " + std::strerror(errno));
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) throw IoError(path.string() + ": close failed: " + std::strerror(errno));
  }
};

}  // namespace

JsonlWriter::JsonlWriter(const fs::path& path) : path_(path), tmp_(path.string() + ".tmp") {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
  }
  switch (compression_from_extension(path)) {
    case Compression::gzip: sink_ = std::make_unique<GzipSink>(tmp_); break;
    case Compression::zstd: sink_ = std::make_unique<ZstdSink>(tmp_); break;
    default: sink_ = std::make_unique<PlainSink>(tmp_); break;
  }
}

JsonlWriter::~JsonlWriter() {
  if (!closed_) {
    sink_.reset();
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void JsonlWriter::write_line(std::string_view line) {
  RLHF_CHECK(line.find('\n') == std::string_view::npos, "JSONL line contains a newline");
  sink_->write(line.data(), line.size());
  sink_->write("\n", 1);
  ++lines_;
}

void JsonlWriter::write(const nlohmann::ordered_json& row) {
  write_line(row.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

void JsonlWriter::write(const nlohmann::json& row) {
  write_line(row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void JsonlWriter::close() {
  if (closed_) return;
  sink_->finish();
  sink_.reset();
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) throw IoError(path_.string() + ": cannot rename the temporary file into place: " + ec.message());
  closed_ = true;
  const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// JSONL rows (records.h)

namespace {

// "... parse error at line 1, column 27: syntax error ..." -> "syntax error ..."
std::string json_error_detail(const std::string& what) {
  const size_t col = what.find("column ");
  if (col != std::string::npos) {
    const size_t colon = what.find(": ", col);
    if (colon != std::string::npos) return what.substr(colon + 2);
  }
  const size_t br = what.find("] ");
  return br == std::string::npos ? what : what.substr(br + 2);
}

std::string hex_byte(unsigned char c) {
  static const char* d = "0123456789abcdef";
  return std::string("0x") + d[c >> 4] + d[c & 15];
}

}  // namespace

static void note_bad_row(const std::string& message, const ReadOptions& opt, ReadReport& report) {
  if (!opt.skip_bad_rows) throw InputError(message);
  ++report.skipped_bad;
  if (report.first_errors.size() < 10) report.first_errors.push_back(message);
  if (report.skipped_bad > opt.max_skipped)
    throw InputError(message + " (and " + std::to_string(report.skipped_bad - 1) +
                     " earlier bad rows: more than --max-skipped " + std::to_string(opt.max_skipped) +
                     "; first: " + report.first_errors.front() + ")");
}

void for_each_jsonl_object(const fs::path& path, const ReadOptions& opt, ReadReport& report,
                           const std::function<void(int64_t line, const nlohmann::json& row)>& fn) {
  LineReader in(path, opt.max_line_bytes);
  const std::string name = path.string();
  std::string line;
  while (in.next(line)) {
    const int64_t ln = in.line_no();
    const std::string where = name + ":" + std::to_string(ln);
    if (in.overlong()) {
      ++report.rows;
      note_bad_row(where + ":1: line longer than " + std::to_string(opt.max_line_bytes) + " bytes", opt, report);
      continue;
    }
    size_t offset = 0;  // bytes removed from the front (BOM)
    std::string_view text = line;
    if (ln == 1 && text.starts_with("\xEF\xBB\xBF")) {
      text.remove_prefix(3);
      offset = 3;
    }
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank line
    ++report.rows;
    if (text.starts_with("\xEF\xBB\xBF")) {  // nlohmann would skip it silently
      note_bad_row(where + ":1: UTF-8 byte order mark inside the file (only the first line may start with one)",
                   opt, report);
      continue;
    }
    if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
      note_bad_row(where + ":" + std::to_string(nul + offset + 1) + ": NUL byte in the line", opt, report);
      continue;
    }
    if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
      note_bad_row(where + ":" + std::to_string(bad + offset + 1) + ": invalid UTF-8 (byte " +
                       hex_byte(static_cast<unsigned char>(text[bad])) + ")",
                   opt, report);
      continue;
    }
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
      const size_t col = std::min(e.byte, text.size() + 1) + offset;
      note_bad_row(where + ":" + std::to_string(std::max<size_t>(col, 1)) + ": invalid JSON: " +
                       json_error_detail(e.what()),
                   opt, report);
      continue;
    } catch (const nlohmann::json::out_of_range& e) {  // a number beyond a double, e.g. 1e999
      // The message quotes the number ("number overflow parsing '1e999'"): point at it.
      const std::string what = e.what();
      const size_t q = what.find('\''), q_end = q == std::string::npos ? q : what.find('\'', q + 1);
      const size_t at = q_end == std::string::npos ? std::string_view::npos : text.find(what.substr(q + 1, q_end - q - 1));
      note_bad_row(where + ":" + std::to_string(at == std::string_view::npos ? 1 : at + offset + 1) +
                       ": number out of range of a double: " + json_error_detail(what),
                   opt, report);
      continue;
    }
    if (!row.is_object()) {
      const size_t first = text.find_first_not_of(" \t\r");
      note_bad_row(where + ":" + std::to_string(first + offset + 1) + ": expected a JSON object per line, got " +
                       row.type_name(),
                   opt, report);
      continue;
    }
    try {
      fn(ln, row);
    } catch (const RowError& e) {
      note_bad_row(where + ": " + e.what(), opt, report);
    }
  }
}

}  // namespace rlhf
