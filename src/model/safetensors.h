// safetensors reading (memory-mapped) and writing (atomic), with the reference reader's checks.
//
// Format: 8-byte little-endian header length N, an N-byte UTF-8 JSON header mapping tensor names
// to {dtype, shape, data_offsets: [begin, end)} (offsets relative to the data buffer after the
// header) plus an optional "__metadata__" string->string map, then the data buffer.
// Every check of docs/reliability.md §1 and §7 tests 1–11 is made before anything is trusted: header size
// caps, UTF-8 and JSON shape, duplicate keys, dtype names, contiguous ordered offsets covering
// the buffer exactly, checked shape arithmetic. Errors are InputError naming the file, the tensor
// and the problem.
//
// Deliberately not here: model semantics (which names a model needs) — see checkpoint.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rlhf {

enum class DType { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
                   F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, F4, F6_E2M3, F6_E3M2, C64 };

const char* dtype_name(DType d);
int dtype_bits(DType d);

// A tensor inside a mapped file: bytes [data, data + nbytes).
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  int64_t nbytes = 0;
  int64_t numel() const;
};

// One open, validated, memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  int64_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Converts F32, F16 or BF16 data to fp32 (other dtypes: InputError naming the tensor).
void convert_to_f32(const TensorView& t, float* out, const std::string& source);

// All tensors of a model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json (docs/reliability.md §7 test 11: a missing shard, a tensor in two shards,
// a tensor in a shard but not in the index, or a shard path leaving the directory are errors).
class SafetensorsModel {
 public:
  static SafetensorsModel open_dir(const std::filesystem::path& dir);
  const TensorView* find(const std::string& name) const;
  std::vector<std::string> names() const;
  std::string source_of(const std::string& name) const;  // the file that holds it, for messages

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const TensorView*, const SafetensorsFile*>> index_;
};

// A tensor to write: fp32 data, or raw bytes of the given dtype.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_bits / 8 bytes
};

// Writes a .safetensors file atomically: a sibling temporary file, fsync, rename over `path`,
// fsync of the directory (docs/reliability.md §7 test 10). Tensors are written in name order; the header
// is padded with spaces to a multiple of 8. On any failure the temporary file is removed,
// `path` is untouched, and IoError names the file and the errno text.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes any small text file (config.json, manifests) with the same atomic protocol.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

// Makes renames inside `dir` durable (the last step of the protocol above); IoError on failure.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace rlhf
