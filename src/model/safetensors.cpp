// safetensors reader (mmap + the reference reader's validation) and atomic writer.
//
// Reading order mirrors huggingface/safetensors `read_metadata` + `Metadata::validate`: file size,
// header length caps (before anything is allocated), UTF-8, strict JSON (duplicate keys are
// errors here, where serde keeps the last one), the shape of each entry, then the offsets sorted
// by begin must tile the data buffer exactly and agree with shape x dtype (checked arithmetic).
// Stricter than the reference on purpose: an entry may hold only dtype, shape and data_offsets.
//
// Deliberately not here: which tensors a model needs (checkpoint.h) and dtype conversion beyond
// F32/F16/BF16 -> F32.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "model/json_strict.h"
#include "tensor/error.h"

namespace rlhf {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The reference reader's cap on the header length (safetensors `MAX_HEADER_SIZE`).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  DType dtype;
  const char* name;
  int bits;
};

// Names and bit widths as in safetensors `Dtype` (safetensors/src/tensor.rs).
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 8},         {DType::U8, "U8", 8},
    {DType::I8, "I8", 8},             {DType::I16, "I16", 16},
    {DType::U16, "U16", 16},          {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},        {DType::I32, "I32", 32},
    {DType::U32, "U32", 32},          {DType::F32, "F32", 32},
    {DType::F64, "F64", 64},          {DType::I64, "I64", 64},
    {DType::U64, "U64", 64},          {DType::F8_E5M2, "F8_E5M2", 8},
    {DType::F8_E4M3, "F8_E4M3", 8},   {DType::F8_E8M0, "F8_E8M0", 8},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8}, {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {DType::F4, "F4", 4},             {DType::F6_E2M3, "F6_E2M3", 6},
    {DType::F6_E3M2, "F6_E3M2", 6},   {DType::C64, "C64", 64},
};

const DTypeInfo& dtype_info(DType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i;
  RLHF_CHECK(false, "unknown DType value " + std::to_string(static_cast<int>(d)));
  __builtin_unreachable();
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kDTypes)
    if (name == i.name) return i.dtype;  // exact, case-sensitive
  return std::nullopt;
}

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// numel * bits as a byte count, or an explanation of why it is not one.
struct ByteCount {
  int64_t bytes = 0;
  std::string error;  // empty when `bytes` is valid
};

ByteCount byte_count(const std::vector<uint64_t>& shape, int bits) {
  int64_t numel = 1;
  for (uint64_t d : shape) {
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, static_cast<int64_t>(d), &numel))
      return {0, "shape " + shape_str(shape) + " overflows a 64-bit element count"};
  }
  int64_t nbits;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(bits), &nbits))
    return {0, "shape " + shape_str(shape) + " times " + std::to_string(bits) +
                   " bits per element overflows a 64-bit bit count"};
  if (nbits % 8 != 0)
    return {0, "shape " + shape_str(shape) + " at " + std::to_string(bits) +
                   " bits per element is " + std::to_string(nbits) +
                   " bits, not a whole number of bytes (misaligned sub-byte tensor)"};
  return {nbits / 8, ""};
}

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text(int err) { return std::strerror(err); }

// A header entry before the offsets are checked against each other.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;
};

// A non-negative JSON integer, or an error naming `what`.
uint64_t json_uint(const json& v, const std::string& src, const std::string& tensor,
                   const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  std::string why = v.is_number_integer() ? "is negative" : "is not a non-negative integer";
  throw InputError(src + ": tensor '" + tensor + "': " + what + " " + detail::json_excerpt(v) +
                   " " + why);
}

Entry parse_entry(const std::string& name, const json& v, const std::string& src) {
  auto fail = [&](const std::string& msg) -> void {
    throw InputError(src + ": tensor '" + name + "': " + msg);
  };
  if (!v.is_object())
    fail(std::string("entry must be a JSON object with dtype, shape and data_offsets, got ") +
         v.type_name());
  for (const auto& [k, _] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      fail("unexpected key \"" + k + "\" (an entry holds exactly dtype, shape and data_offsets)");
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!v.contains(k)) fail(std::string("missing \"") + k + "\"");

  Entry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail("dtype must be a string, got " + detail::json_excerpt(dt));
  auto d = dtype_from_name(dt.get_ref<const std::string&>());
  if (!d)
    fail("unknown dtype " + detail::json_excerpt(dt) +
         " (dtype names are upper case: F32, F16, BF16, I64, ...)");
  e.dtype = *d;

  const json& sh = v["shape"];
  if (!sh.is_array()) fail("shape must be an array of integers, got " + detail::json_excerpt(sh));
  for (const auto& dim : sh) e.shape.push_back(json_uint(dim, src, name, "shape dimension"));

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail("data_offsets must be [begin, end], got " + detail::json_excerpt(off));
  e.begin = json_uint(off[0], src, name, "data_offsets begin");
  e.end = json_uint(off[1], src, name, "data_offsets end");
  return e;
}

// Checks that the entries tile [0, data_size) exactly and agree with their shapes.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const std::string& src) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    const std::string where = src + ": tensor '" + e.name + "': data_offsets [" +
                              std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) throw InputError(where + " have begin > end");
    if (e.begin < pos)
      throw InputError(where + " overlap tensor '" + prev->name + "', which ends at " +
                       std::to_string(pos));
    if (e.begin > pos)
      throw InputError(where + " leave a gap of " + std::to_string(e.begin - pos) +
                       " bytes after " +
                       (prev ? "tensor '" + prev->name + "'" : std::string("the start of the data")) +
                       " (tensors must be contiguous from offset 0)");
    if (e.end > data_size)
      throw InputError(where + " run past the end of the file (the data buffer holds " +
                       std::to_string(data_size) + " bytes)");
    ByteCount bc = byte_count(e.shape, dtype_info(e.dtype).bits);
    if (!bc.error.empty())
      throw InputError(src + ": tensor '" + e.name + "': " + bc.error);
    if (static_cast<uint64_t>(bc.bytes) != e.end - e.begin)
      throw InputError(where + " span " + std::to_string(e.end - e.begin) + " bytes, but dtype " +
                       dtype_info(e.dtype).name + " with shape " + shape_str(e.shape) + " needs " +
                       std::to_string(bc.bytes));
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size) {
    std::string after = prev ? "after the last tensor '" + prev->name + "'" : "and no tensors";
    throw InputError(src + ": " + std::to_string(data_size - pos) + " trailing bytes " + after +
                     " (the data buffer holds " + std::to_string(data_size) +
                     " bytes, tensors cover " + std::to_string(pos) + ")");
  }
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;  // signed zero
    } else {
      // Subnormal: mant * 2^-24. Normalise so the leading one becomes the implicit bit.
      int32_t e = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --e;
      }
      bits = sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf, or NaN with its payload
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Writes all of [p, p+n) to fd; returns 0 or an errno value.
int write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

struct Chunk {
  const void* data;
  size_t size;
};

void fsync_directory_impl(const fs::path& dir) {
  FdGuard dfd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd < 0) throw IoError("cannot open directory " + dir.string() + " to fsync it: " + errno_text(errno));
  if (::fsync(dfd.fd) != 0) throw IoError("fsync of directory " + dir.string() + " failed: " + errno_text(errno));
}

// The atomic write protocol: sibling temporary file, write, fsync, close, rename, directory fsync.
// On failure before the rename the temporary file is removed and `path` is untouched.
void write_chunks_atomically(const fs::path& path, const std::vector<Chunk>& chunks) {
  static std::atomic<uint64_t> counter{0};
  const std::string name = path.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw IoError(path.string() + ": not a file name");
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const fs::path tmp = dir / ("." + name + ".tmp." + std::to_string(::getpid()) + "." +
                              std::to_string(counter.fetch_add(1)));

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    int err = errno;
    throw IoError(path.string() + ": cannot create temporary file " + tmp.string() + ": " +
                  errno_text(err));
  }
  auto fail = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw IoError(path.string() + ": " + what + ": " + errno_text(err));
  };
  for (const Chunk& c : chunks)
    if (c.size > 0)
      if (int err = write_all(fd, c.data, c.size)) fail("write to " + tmp.string() + " failed", err);
  if (::fsync(fd) != 0) fail("fsync of " + tmp.string() + " failed", errno);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail("close of " + tmp.string() + " failed", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename from " + tmp.string() + " failed", errno);

  // The new file is in place; make the rename itself durable.
  try {
    fsync_directory_impl(dir);
  } catch (const IoError& e) {
    throw IoError(path.string() + ": " + e.what());
  }
}

// A shard file name from the index must stay inside the model directory: relative, and without
// "." or ".." components. Symlinks are followed (Hugging Face cache snapshots link into blobs/).
bool shard_name_is_safe(const std::string& s) {
  if (s.empty() || s.find('\0') != std::string::npos || s.find('\\') != std::string::npos)
    return false;
  fs::path p(s);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  for (const auto& part : p) {
    const std::string c = part.string();
    if (c.empty() || c == "." || c == "..") return false;
  }
  return true;
}

}  // namespace

const char* dtype_name(DType d) { return dtype_info(d).name; }
int dtype_bits(DType d) { return dtype_info(d).bits; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  const std::string src = path.string();
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) throw IoError(src + ": cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) throw IoError(src + ": cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw InputError(src + ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  if (file_size < 8)
    throw InputError(src + ": header too small: the file has " + std::to_string(file_size) +
                     " bytes, a safetensors file starts with an 8-byte header length");
  unsigned char len_bytes[8];
  for (size_t got = 0; got < 8;) {
    ssize_t r = ::pread(fd.fd, len_bytes + got, 8 - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw IoError(src + ": cannot read the header length: " + errno_text(r ? errno : EIO));
    got += static_cast<size_t>(r);
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeaderBytes)
    throw InputError(src + ": header length " + std::to_string(n) + " exceeds the limit of " +
                     std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > file_size - 8)
    throw InputError(src + ": header length " + std::to_string(n) +
                     " runs past the end of the file (" + std::to_string(file_size) + " bytes)");

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile);
  f->path_ = path;
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (map == MAP_FAILED) throw IoError(src + ": mmap failed: " + errno_text(errno));
  f->map_ = map;
  f->map_size_ = static_cast<int64_t>(file_size);
  const auto* base = static_cast<const uint8_t*>(map);

  const std::string_view header(reinterpret_cast<const char*>(base) + 8, n);
  if (size_t bad = detail::find_invalid_utf8(header); bad != std::string_view::npos)
    throw InputError(src + ": header is not valid UTF-8 at byte offset " + std::to_string(8 + bad));
  const json j = detail::parse_json_strict(header, src, 8);
  if (!j.is_object())
    throw InputError(src + ": header must be a JSON object, got " + std::string(j.type_name()) +
                     " (at byte offset 8)");

  std::vector<Entry> entries;
  for (const auto& [key, val] : j.items()) {
    if (key == "__metadata__") {
      if (val.is_null()) continue;  // the reference reader treats null as absent
      if (!val.is_object())
        throw InputError(src + ": __metadata__ must be an object of strings, got " +
                         detail::json_excerpt(val));
      for (const auto& [mk, mv] : val.items()) {
        if (!mv.is_string())
          throw InputError(src + ": __metadata__ key \"" + mk + "\" must map to a string, got " +
                           mv.type_name() + " " + detail::json_excerpt(mv));
        f->metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, val, src));
  }
  check_layout(entries, file_size - 8 - n, src);

  const uint8_t* data = base + 8 + n;
  for (Entry& e : entries) {
    TensorView t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape.assign(e.shape.begin(), e.shape.end());  // each dim fits int64 (checked above)
    t.data = data + e.begin;
    t.nbytes = static_cast<int64_t>(e.end - e.begin);
    f->tensors_.emplace(e.name, std::move(t));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, static_cast<size_t>(map_size_));
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void convert_to_f32(const TensorView& t, float* out, const std::string& source) {
  const int64_t n = t.numel();
  const int bits = dtype_bits(t.dtype);
  RLHF_CHECK(n * bits / 8 == t.nbytes, "tensor '" + t.name + "': view size does not match shape");
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out, t.data, static_cast<size_t>(t.nbytes));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);  // the data need not be aligned
        out[i] = f16_to_f32(h);
      }
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        const uint32_t bits32 = static_cast<uint32_t>(h) << 16;
        std::memcpy(&out[i], &bits32, 4);
      }
      return;
    default:
      throw InputError(source + ": tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) +
                       "; only F32, F16 and BF16 can be loaded as fp32");
  }
}

SafetensorsModel SafetensorsModel::open_dir(const fs::path& dir) {
  SafetensorsModel m;
  const fs::path single = dir / "model.safetensors";
  const fs::path index_path = dir / "model.safetensors.index.json";
  std::error_code ec;

  // Like transformers, a single model.safetensors wins over an index.
  if (fs::exists(single, ec)) {
    m.files_.push_back(SafetensorsFile::open(single));
    for (const auto& [name, view] : m.files_.back()->tensors())
      m.index_[name] = {&view, m.files_.back().get()};
    return m;
  }
  if (!fs::exists(index_path, ec))
    throw InputError(dir.string() + ": no model.safetensors or model.safetensors.index.json");

  const std::string isrc = index_path.string();
  std::string text;
  {
    FdGuard fd{::open(index_path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.fd < 0) throw IoError(isrc + ": cannot open: " + errno_text(errno));
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(fd.fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw IoError(isrc + ": read failed: " + errno_text(errno));
      if (r == 0) break;
      text.append(buf, static_cast<size_t>(r));
      if (text.size() > kMaxHeaderBytes)
        throw InputError(isrc + ": larger than " + std::to_string(kMaxHeaderBytes) + " bytes");
    }
  }
  if (size_t bad = detail::find_invalid_utf8(text); bad != std::string::npos)
    throw InputError(isrc + ": not valid UTF-8 at byte offset " + std::to_string(bad));
  const json idx = detail::parse_json_strict(text, isrc);
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
    throw InputError(isrc + ": expected a JSON object with a \"weight_map\" object");

  // tensor name -> shard file name, as the index says; and the shards to open.
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shards;
  for (const auto& [name, v] : idx["weight_map"].items()) {
    if (!v.is_string())
      throw InputError(isrc + ": weight_map entry for tensor '" + name +
                       "' must be a shard file name, got " + detail::json_excerpt(v));
    const std::string& shard = v.get_ref<const std::string&>();
    if (!shard_name_is_safe(shard))
      throw InputError(isrc + ": tensor '" + name + "': shard path \"" + shard +
                       "\" escapes the model directory (must be a relative path without \".\" or "
                       "\"..\" components)");
    weight_map[name] = shard;
    shards.insert(shard);
  }
  for (const std::string& shard : shards) {
    const fs::path p = dir / shard;
    if (!fs::exists(p, ec))
      throw InputError(isrc + ": shard \"" + shard + "\" listed in the index does not exist (" +
                       p.string() + ")");
  }

  // Open every shard, then check the index against what the shards hold.
  std::map<std::string, std::vector<std::pair<const TensorView*, const SafetensorsFile*>>> found;
  std::map<const SafetensorsFile*, std::string> shard_of;
  for (const std::string& shard : shards) {
    m.files_.push_back(SafetensorsFile::open(dir / shard));
    const SafetensorsFile* f = m.files_.back().get();
    shard_of[f] = shard;
    for (const auto& [name, view] : f->tensors()) found[name].push_back({&view, f});
  }
  for (const auto& [name, where] : found) {
    if (where.size() > 1)
      throw InputError(isrc + ": tensor '" + name + "' is in two shards: \"" +
                       shard_of[where[0].second] + "\" and \"" + shard_of[where[1].second] + "\"");
    const std::string& actual = shard_of[where[0].second];
    auto it = weight_map.find(name);
    if (it == weight_map.end())
      throw InputError(isrc + ": tensor '" + name + "' in shard \"" + actual +
                       "\" is not listed in the index");
    if (it->second != actual)
      throw InputError(isrc + ": tensor '" + name + "' is listed in shard \"" + it->second +
                       "\" but stored in shard \"" + actual + "\"");
    m.index_[name] = where[0];
  }
  for (const auto& [name, shard] : weight_map)
    if (!found.count(name))
      throw InputError(isrc + ": tensor '" + name + "' is listed in shard \"" + shard +
                       "\" but that shard does not contain it");
  return m;
}

const TensorView* SafetensorsModel::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.first;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, _] : index_) out.push_back(name);
  return out;
}

std::string SafetensorsModel::source_of(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? std::string() : it->second.second->path().string();
}

void write_safetensors(const fs::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

  json header = json::object();
  std::vector<Chunk> chunks(2);  // length and header first, filled in below
  int64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const TensorToWrite& t = *order[i];
    RLHF_CHECK(!t.name.empty() && t.name != "__metadata__",
               "write_safetensors: invalid tensor name '" + t.name + "'");
    RLHF_CHECK(i == 0 || order[i - 1]->name != t.name,
               "write_safetensors: duplicate tensor name '" + t.name + "'");
    std::vector<uint64_t> shape;
    for (int64_t d : t.shape) {
      RLHF_CHECK(d >= 0, "write_safetensors: tensor '" + t.name + "' has a negative dimension");
      shape.push_back(static_cast<uint64_t>(d));
    }
    ByteCount bc = byte_count(shape, dtype_bits(t.dtype));
    RLHF_CHECK(bc.error.empty(), "write_safetensors: tensor '" + t.name + "': " + bc.error);
    RLHF_CHECK(bc.bytes == 0 || t.data != nullptr,
               "write_safetensors: tensor '" + t.name + "' has no data");
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bc.bytes}}};
    offset += bc.bytes;
    chunks.push_back({t.data, static_cast<size_t>(bc.bytes)});
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw LogicError(path.string() + ": tensor name or metadata is not valid UTF-8: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N stays a multiple of 8
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t{text.size()} >> (8 * i));
  chunks[0] = {len, 8};
  chunks[1] = {text.data(), text.size()};
  write_chunks_atomically(path, chunks);
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  write_chunks_atomically(path, {{contents.data(), contents.size()}});
}

void fsync_directory(const fs::path& dir) { fsync_directory_impl(dir); }

}  // namespace rlhf
