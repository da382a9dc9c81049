// safetensors reader and writer: docs/reliability.md §7 tests 1–11, one named test per case, plus
// fp16/bf16 conversion and the atomic-write guarantees.
// Broken files are built byte by byte in a temporary directory; every rejection must be an
// InputError naming the file and the specific problem (tensor or key).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "model_test_util.h"
#include "model/safetensors.h"
#include "tensor/error.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;
using test::write_bytes;

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A safetensors file: length prefix (the header's size unless overridden), header, data.
std::string st_file(const std::string& header, const std::string& data = "",
                    std::optional<uint64_t> length = std::nullopt) {
  return le64(length ? *length : header.size()) + header + data;
}

// Two F32 tensors, a [0,8) and b [8,16).
const char* kTwoTensors =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";

class Safetensors : public ::testing::Test {
 protected:
  // Writes `bytes` as case.safetensors and asserts that opening it is an InputError naming the
  // file and containing every one of `parts`.
  void expect_rejected(const std::string& bytes, std::initializer_list<std::string> parts) {
    const fs::path p = dir_ / "case.safetensors";
    write_bytes(p, bytes);
    expect_error<InputError>([&] { SafetensorsFile::open(p); }, {p.string()});
    expect_error<InputError>([&] { SafetensorsFile::open(p); }, parts);
  }
  std::unique_ptr<SafetensorsFile> open_bytes(const std::string& bytes) {
    const fs::path p = dir_ / "ok.safetensors";
    write_bytes(p, bytes);
    return SafetensorsFile::open(p);
  }
  TempDir dir_;
};

std::vector<float> floats_of(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t, out.data(), "test");
  return out;
}

// ---- Test 1: fewer than 8 bytes ---------------------------------------------------------------

TEST_F(Safetensors, Test01_FilesOf0To7BytesAreHeaderTooSmall) {
  for (size_t n = 0; n < 8; ++n) {
    SCOPED_TRACE(n);
    expect_rejected(std::string(n, '\x01'), {"header too small", std::to_string(n) + " bytes"});
  }
}

// ---- Test 2: header length N ------------------------------------------------------------------

TEST_F(Safetensors, Test02_HeaderLengthAllOnesExceedsCap) {
  expect_rejected(st_file("{}", "", ~uint64_t{0}), {"header length 18446744073709551615", "exceeds the limit"});
}

TEST_F(Safetensors, Test02_HeaderLengthJustAboveCap) {
  expect_rejected(st_file("{}", "", 100'000'001), {"header length 100000001", "exceeds the limit of 100000000"});
}

TEST_F(Safetensors, Test02_HeaderLengthPastEndOfFile) {
  // Under the cap, but larger than the file: a distinct error.
  expect_rejected(st_file("{}", "", 1000), {"header length 1000", "runs past the end of the file"});
  expect_rejected(st_file("{}", "", 3), {"header length 3", "runs past the end of the file"});
}

TEST_F(Safetensors, Test02_HugeHeaderLengthsFailFastWithoutAllocating) {
  struct rusage before {};
  getrusage(RUSAGE_SELF, &before);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t n : {~uint64_t{0}, uint64_t{1} << 63, uint64_t{100'000'001}, uint64_t{99'999'999}}) {
    const fs::path p = dir_ / "huge.safetensors";
    write_bytes(p, st_file("{}", "", n));
    EXPECT_THROW(SafetensorsFile::open(p), InputError);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage after {};
  getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(secs, 1.0);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 32 * 1024) << "peak RSS grew (KiB)";
}

// ---- Test 3: UTF-8, JSON, object ----------------------------------------------------------------

TEST_F(Safetensors, Test03_HeaderNotUtf8) {
  // The bad byte is header byte 2, file offset 10.
  expect_rejected(st_file("{\"\xff\":1}"), {"not valid UTF-8", "byte offset 10"});
}

TEST_F(Safetensors, Test03_HeaderOverlongUtf8) {
  expect_rejected(st_file("{\"\xc0\xaf\":1}"), {"not valid UTF-8", "byte offset 10"});
}

TEST_F(Safetensors, Test03_HeaderEncodedSurrogate) {
  expect_rejected(st_file("{\"\xed\xa0\x80\":1}"), {"not valid UTF-8", "byte offset 10"});
}

TEST_F(Safetensors, Test03_HeaderTruncatedUtf8Sequence) {
  expect_rejected(st_file("{\"a\":\"\xe2\x82"), {"not valid UTF-8", "byte offset 14"});
}

TEST_F(Safetensors, Test03_HeaderNotJson) {
  // Error at header byte 6 -> file offset 14.
  expect_rejected(st_file(R"({"a": })"), {"invalid JSON", "byte offset 14", "line 1, column 7"});
}

TEST_F(Safetensors, Test03_HeaderEmpty) {
  expect_rejected(st_file(""), {"invalid JSON", "byte offset 8"});
}

TEST_F(Safetensors, Test03_HeaderNotAnObject) {
  expect_rejected(st_file("[1, 2]  "), {"header must be a JSON object", "array", "byte offset 8"});
  expect_rejected(st_file("\"x\""), {"header must be a JSON object", "string"});
}

TEST_F(Safetensors, Test03_HeaderNestedTooDeep) {
  expect_rejected(st_file(std::string(5000, '[') + std::string(5000, ']')), {"nested deeper"});
}

TEST_F(Safetensors, Test03_HeaderPaddedWithSpacesAndLeadingWhitespaceLoads) {
  auto f = open_bytes(st_file(std::string("  ") + kTwoTensors + "      ", std::string(16, '\0')));
  EXPECT_EQ(f->tensors().size(), 2u);
}

// ---- Test 4: duplicate keys ---------------------------------------------------------------------

TEST_F(Safetensors, Test04_DuplicateTensorName) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  const fs::path p = dir_ / "case.safetensors";
  write_bytes(p, st_file(h, std::string(16, '\0')));
  expect_error<InputError>([&] { SafetensorsFile::open(p); },
                           {p.string(), "duplicate key \"w\""});
  try {
    SafetensorsFile::open(p);
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).find("data_offsets"), std::string::npos)
        << "must not be reported as an offset error: " << e.what();
  }
}

TEST_F(Safetensors, Test04_DuplicateMetadataKey) {
  const std::string h = R"({"__metadata__":{"format":"pt","format":"np"},)"
                        R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')),
                  {"duplicate key \"format\"", "inside \"__metadata__\""});
}

TEST_F(Safetensors, Test04_DuplicateMetadataSection) {
  const std::string h = R"({"__metadata__":{"a":"1"},"__metadata__":{"b":"2"}})";
  expect_rejected(st_file(h), {"duplicate key \"__metadata__\""});
}

TEST_F(Safetensors, Test04_DuplicateKeyInsideEntry) {
  const std::string h = R"({"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')), {"duplicate key \"dtype\"", "inside \"w\""});
}

// ---- Test 5: __metadata__ values ----------------------------------------------------------------

TEST_F(Safetensors, Test05_MetadataNumberValue) {
  expect_rejected(st_file(R"({"__metadata__":{"step":5}})"),
                  {"__metadata__ key \"step\"", "must map to a string", "number"});
}

TEST_F(Safetensors, Test05_MetadataObjectValue) {
  expect_rejected(st_file(R"({"__metadata__":{"cfg":{"a":"b"}}})"),
                  {"__metadata__ key \"cfg\"", "must map to a string", "object"});
}

TEST_F(Safetensors, Test05_MetadataNullValue) {
  expect_rejected(st_file(R"({"__metadata__":{"note":null}})"),
                  {"__metadata__ key \"note\"", "must map to a string", "null"});
}

TEST_F(Safetensors, Test05_MetadataNotAnObject) {
  expect_rejected(st_file(R"({"__metadata__":["a"]})"), {"__metadata__ must be an object"});
}

TEST_F(Safetensors, Test05_MetadataStringsLoad) {
  auto f = open_bytes(st_file(R"({"__metadata__":{"format":"pt","note":"é"}})"));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "é");
  EXPECT_TRUE(f->tensors().empty());
}

// ---- Test 6: offsets ----------------------------------------------------------------------------

TEST_F(Safetensors, Test06_OverlappingOffsets) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_rejected(st_file(h, std::string(12, '\0')),
                  {"tensor 'b'", "data_offsets [4, 12]", "overlap tensor 'a'"});
}

TEST_F(Safetensors, Test06_TwoTensorsSameRange) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')), {"tensor 'b'", "overlap tensor 'a'"});
}

TEST_F(Safetensors, Test06_GapBetweenTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  expect_rejected(st_file(h, std::string(20, '\0')),
                  {"tensor 'b'", "gap of 4 bytes after tensor 'a'"});
}

TEST_F(Safetensors, Test06_GapAtStartOfData) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_rejected(st_file(h, std::string(12, '\0')),
                  {"tensor 'a'", "gap of 4 bytes after the start of the data"});
}

TEST_F(Safetensors, Test06_BeginAfterEnd) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})";
  expect_rejected(st_file(h, std::string(8, '\0')), {"tensor 'a'", "[8, 0]", "begin > end"});
}

TEST_F(Safetensors, Test06_UnorderedOffsetsThatDoNotTile) {
  // Listed a, b, c; by offset c, a, b with a hole where c ends.
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[20,28]},)"
                        R"("c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(28, '\0')), {"tensor 'a'", "gap of 4 bytes after tensor 'c'"});
}

TEST_F(Safetensors, Test06_UnorderedEntriesWithContiguousOffsetsLoad) {
  // Header order (by name) differs from data order: valid, as in the reference reader.
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  float data[2] = {2.0f, 1.0f};
  auto f = open_bytes(st_file(h, std::string(reinterpret_cast<char*>(data), 8)));
  EXPECT_EQ(floats_of(*f->find("a"))[0], 1.0f);
  EXPECT_EQ(floats_of(*f->find("b"))[0], 2.0f);
}

TEST_F(Safetensors, Test06_OffsetsPastEndOfFile) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1000],"data_offsets":[8,4008]}})";
  expect_rejected(st_file(h, std::string(16, '\0')),
                  {"tensor 'b'", "[8, 4008]", "run past the end of the file"});
}

TEST_F(Safetensors, Test06_OffsetsBeyondInt64) {
  const std::string h =
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})";
  expect_rejected(st_file(h, std::string(1, '\0')), {"tensor 'a'", "run past the end of the file"});
}

TEST_F(Safetensors, Test06_TruncatedFile) {
  expect_rejected(st_file(kTwoTensors, std::string(12, '\0')),
                  {"tensor 'b'", "run past the end of the file", "holds 12 bytes"});
}

TEST_F(Safetensors, Test06_TrailingBytes) {
  expect_rejected(st_file(kTwoTensors, std::string(20, '\0')),
                  {"4 trailing bytes", "after the last tensor 'b'"});
}

TEST_F(Safetensors, Test06_TrailingBytesWithoutTensors) {
  expect_rejected(st_file("{}", "junk"), {"4 trailing bytes", "no tensors"});
}

// ---- Test 7: shape x dtype ----------------------------------------------------------------------

TEST_F(Safetensors, Test07_SizeDisagreesWithShape) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')),
                  {"tensor 'a'", "span 8 bytes", "dtype F32 with shape [3] needs 12"});
}

TEST_F(Safetensors, Test07_ShapeProductOverflow_2x2pow63) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[2,9223372036854775808],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')),
                  {"tensor 'a'", "shape [2, 9223372036854775808]", "overflows"});
}

TEST_F(Safetensors, Test07_ShapeProductOverflow_2pow32x2pow32) {
  const std::string h =
      R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')), {"tensor 'a'", "overflows"});
}

TEST_F(Safetensors, Test07_BitCountOverflow) {
  // 2^61 elements fit, 2^61 * 32 bits do not.
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}})";
  expect_rejected(st_file(h, std::string(8, '\0')), {"tensor 'a'", "overflows a 64-bit bit count"});
}

TEST_F(Safetensors, Test07_UnalignedSubByteTensor) {
  const std::string h = R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})";
  expect_rejected(st_file(h, std::string(2, '\0')),
                  {"tensor 'a'", "12 bits", "not a whole number of bytes"});
}

TEST_F(Safetensors, Test07_AlignedSubByteTensorsLoad) {
  const std::string h = R"({"a":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]},)"
                        R"("b":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[3,6]}})";
  auto f = open_bytes(st_file(h, "abcdef"));
  EXPECT_EQ(f->find("a")->nbytes, 3);
  EXPECT_EQ(f->find("b")->nbytes, 3);
}

// ---- Test 8: dtype names, entry shape, round trip ---------------------------------------------

TEST_F(Safetensors, Test08_UnknownDtype) {
  const std::string h = R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})";
  expect_rejected(st_file(h, std::string(16, '\0')), {"tensor 'a'", "unknown dtype \"F128\""});
}

TEST_F(Safetensors, Test08_LowercaseDtype) {
  const std::string h = R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "unknown dtype \"f32\""});
}

TEST_F(Safetensors, Test08_DtypeNotAString) {
  const std::string h = R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "dtype must be a string"});
}

TEST_F(Safetensors, Test08_EntryNotAnObject) {
  expect_rejected(st_file(R"({"a":[0,4]})"), {"tensor 'a'", "entry must be a JSON object"});
}

TEST_F(Safetensors, Test08_EntryMissingField) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1]}})";
  expect_rejected(st_file(h), {"tensor 'a'", "missing \"data_offsets\""});
}

TEST_F(Safetensors, Test08_EntryUnexpectedField) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "unexpected key \"x\""});
}

TEST_F(Safetensors, Test08_NegativeDimension) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "shape dimension -1 is negative"});
}

TEST_F(Safetensors, Test08_FractionalDimension) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "not a non-negative integer"});
}

TEST_F(Safetensors, Test08_DataOffsetsNotAPair) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "data_offsets must be [begin, end]"});
}

TEST_F(Safetensors, Test08_NegativeOffset) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})";
  expect_rejected(st_file(h, std::string(4, '\0')), {"tensor 'a'", "data_offsets begin -4 is negative"});
}

constexpr DType kAllDTypes[] = {
    DType::BOOL,        DType::U8,          DType::I8,      DType::I16,     DType::U16,
    DType::F16,         DType::BF16,        DType::I32,     DType::U32,     DType::F32,
    DType::F64,         DType::I64,         DType::U64,     DType::F8_E5M2, DType::F8_E4M3,
    DType::F8_E8M0,     DType::F8_E4M3FNUZ, DType::F8_E5M2FNUZ, DType::F4,  DType::F6_E2M3,
    DType::F6_E3M2,     DType::C64};

TEST_F(Safetensors, Test08_EveryDtypeRoundTripsThroughWriterAndReader) {
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorToWrite> ts;
  for (DType d : kAllDTypes) {
    // [4, 6] elements: a whole number of bytes for 4- and 6-bit types too.
    const std::vector<int64_t> shape = {4, 6};
    std::vector<uint8_t> b(static_cast<size_t>(24 * dtype_bits(d) / 8));
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    bufs.push_back(std::move(b));
    ts.push_back({std::string("t_") + dtype_name(d), d, shape, nullptr});
  }
  for (size_t i = 0; i < ts.size(); ++i) ts[i].data = bufs[i].data();
  const fs::path p = dir_ / "all.safetensors";
  write_safetensors(p, ts, {{"format", "pt"}});
  auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->tensors().size(), ts.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (size_t i = 0; i < ts.size(); ++i) {
    SCOPED_TRACE(ts[i].name);
    const TensorView* v = f->find(ts[i].name);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->dtype, ts[i].dtype);
    EXPECT_EQ(v->shape, ts[i].shape);
    ASSERT_EQ(v->nbytes, static_cast<int64_t>(bufs[i].size()));
    EXPECT_EQ(std::memcmp(v->data, bufs[i].data(), bufs[i].size()), 0);
  }
}

TEST(SafetensorsDType, NamesAndBitWidthsMatchTheFormat) {
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_STREQ(dtype_name(DType::F8_E4M3FNUZ), "F8_E4M3FNUZ");
  EXPECT_EQ(dtype_bits(DType::F4), 4);
  EXPECT_EQ(dtype_bits(DType::F6_E3M2), 6);
  EXPECT_EQ(dtype_bits(DType::C64), 64);
  EXPECT_EQ(dtype_bits(DType::BOOL), 8);
}

// ---- Test 9: zero-size, scalars, NaN/Inf ---------------------------------------------------------

TEST_F(Safetensors, Test09_ZeroSizeTensor) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  float one = 1.0f;
  auto f = open_bytes(st_file(h, std::string(reinterpret_cast<char*>(&one), 4)));
  const TensorView* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(a->numel(), 0);
  EXPECT_EQ(a->nbytes, 0);
  EXPECT_TRUE(floats_of(*a).empty());
  EXPECT_EQ(floats_of(*f->find("b"))[0], 1.0f);
}

TEST_F(Safetensors, Test09_RankZeroScalar) {
  const std::string h = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  float x = -3.5f;
  auto f = open_bytes(st_file(h, std::string(reinterpret_cast<char*>(&x), 4)));
  const TensorView* s = f->find("s");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numel(), 1);
  EXPECT_EQ(floats_of(*s)[0], -3.5f);
}

TEST_F(Safetensors, Test09_NanInfPayloadLoadedAsStored) {
  const uint32_t bits[4] = {0x7FC00001u /* NaN with payload */, 0xFF800001u /* signalling NaN */,
                            0x7F800000u /* +inf */, 0xFF800000u /* -inf */};
  TensorToWrite t{"x", DType::F32, {4}, bits};
  const fs::path p = dir_ / "nan.safetensors";
  write_safetensors(p, {t});
  auto f = SafetensorsFile::open(p);
  const TensorView* v = f->find("x");
  EXPECT_EQ(std::memcmp(v->data, bits, 16), 0);
  std::vector<float> out = floats_of(*v);
  EXPECT_EQ(std::memcmp(out.data(), bits, 16), 0);
}

// ---- Test 10: writer format and atomicity ------------------------------------------------------

TEST_F(Safetensors, Test10_HeaderStartsWithBraceAndIsSpacePaddedTo8) {
  std::set<size_t> pads;
  for (int len = 1; len <= 16; ++len) {
    const std::string name(static_cast<size_t>(len), 'n');
    const float x = 1.0f;
    const fs::path p = dir_ / "pad.safetensors";
    write_safetensors(p, {{name, DType::F32, {1}, &x}});
    const std::string bytes = test::read_bytes(p);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    ASSERT_EQ((8 + n) % 8, 0u) << name;
    ASSERT_EQ(bytes.size(), 8 + n + 4);
    EXPECT_EQ(bytes[8], '{');
    const std::string header = bytes.substr(8, n);
    const size_t close = header.rfind('}');
    pads.insert(n - close - 1);
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << "padding is spaces";
    EXPECT_EQ(SafetensorsFile::open(p)->find(name)->nbytes, 4);
  }
  EXPECT_GT(pads.size(), 4u) << "name lengths 1..16 should need several padding amounts";
}

TEST_F(Safetensors, Test10_TensorsWrittenInNameOrderContiguously) {
  const float a[2] = {1, 2}, b[3] = {3, 4, 5};
  const uint16_t c[1] = {0x3C00};
  const fs::path p = dir_ / "order.safetensors";
  write_safetensors(p, {{"zeta", DType::F32, {3}, b}, {"alpha", DType::F32, {2}, a},
                        {"mid", DType::F16, {1}, c}});
  auto f = SafetensorsFile::open(p);
  const uint8_t* base = f->find("alpha")->data;
  EXPECT_EQ(f->find("mid")->data, base + 8);
  EXPECT_EQ(f->find("zeta")->data, base + 10);
  EXPECT_EQ(floats_of(*f->find("zeta")), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(floats_of(*f->find("mid")), (std::vector<float>{1}));
}

TEST_F(Safetensors, Test10_FailedWriteLeavesPreviousFileIntact) {
  const fs::path p = dir_ / "model.safetensors";
  const float old_data[2] = {7, 8};
  write_safetensors(p, {{"w", DType::F32, {2}, old_data}});
  const std::string old_bytes = test::read_bytes(p);

  // Make the write fail half way: a 64 KiB file-size limit against a 1 MiB tensor (EFBIG).
  std::vector<float> big(256 * 1024, 1.0f);
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = saved;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  bool io_error = false;
  try {
    write_safetensors(p, {{"w", DType::F32, {static_cast<int64_t>(big.size())}, big.data()}});
  } catch (const IoError& e) {
    io_error = true;
    msg = e.what();
  } catch (...) {
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(io_error);
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
  EXPECT_EQ(test::read_bytes(p), old_bytes);
  EXPECT_EQ(floats_of(*SafetensorsFile::open(p)->find("w")), (std::vector<float>{7, 8}));
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "model.safetensors") << "temporary file left behind";
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(Safetensors, Test10_WriteIntoMissingDirectoryFails) {
  const fs::path p = dir_ / "no" / "such" / "dir" / "model.safetensors";
  const float x = 1;
  expect_error<IoError>([&] { write_safetensors(p, {{"w", DType::F32, {1}, &x}}); },
                        {p.string(), std::strerror(ENOENT)});
  EXPECT_FALSE(fs::exists(dir_ / "no"));
}

TEST_F(Safetensors, Test10_WriteOverADirectoryFailsAndRemovesTemp) {
  const fs::path p = dir_ / "taken";
  fs::create_directory(p);
  const float x = 1;
  expect_error<IoError>([&] { write_safetensors(p, {{"w", DType::F32, {1}, &x}}); },
                        {p.string(), "rename", std::strerror(EISDIR)});
  EXPECT_TRUE(fs::is_directory(p));
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u) << "temporary file left behind";
}

TEST_F(Safetensors, Test10_MmapReaderKeepsDataAfterFileIsReplaced) {
  const fs::path p = dir_ / "model.safetensors";
  const float v1[4] = {1, 2, 3, 4};
  const float v2[4] = {5, 6, 7, 8};
  write_safetensors(p, {{"w", DType::F32, {4}, v1}});
  auto reader = SafetensorsFile::open(p);
  write_safetensors(p, {{"w", DType::F32, {4}, v2}});
  EXPECT_EQ(floats_of(*reader->find("w")), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(floats_of(*SafetensorsFile::open(p)->find("w")), (std::vector<float>{5, 6, 7, 8}));
}

TEST_F(Safetensors, Test10_WriteFileAtomicReplacesContents) {
  const fs::path p = dir_ / "config.json";
  write_file_atomic(p, "{\"a\": 1}\n");
  write_file_atomic(p, "{\"b\": 2}\n");
  EXPECT_EQ(test::read_bytes(p), "{\"b\": 2}\n");
  expect_error<IoError>([&] { write_file_atomic(dir_ / "missing" / "x.json", "{}"); },
                        {"missing/x.json", std::strerror(ENOENT)});
}

// ---- Test 11: model directories and shard indexes ----------------------------------------------

class SafetensorsShards : public ::testing::Test {
 protected:
  // A shard holding F32 tensors `names`, each [2] = {i, i}.
  void shard(const std::string& file, const std::vector<std::string>& names) {
    std::vector<std::vector<float>> data;
    std::vector<TensorToWrite> ts;
    for (size_t i = 0; i < names.size(); ++i) data.push_back({float(i), float(i)});
    for (size_t i = 0; i < names.size(); ++i) ts.push_back({names[i], DType::F32, {2}, data[i].data()});
    write_safetensors(model_ / file, ts);
  }
  void index(const std::string& weight_map_json) {
    write_bytes(model_ / "model.safetensors.index.json",
                R"({"metadata":{"total_size":0},"weight_map":)" + weight_map_json + "}");
  }
  void expect_dir_rejected(std::initializer_list<std::string> parts) {
    expect_error<InputError>([&] { SafetensorsModel::open_dir(model_); }, parts);
  }
  std::string index_name() const { return (model_ / "model.safetensors.index.json").string(); }

  TempDir tmp_;
  fs::path model_ = [this] {
    fs::create_directory(tmp_ / "model");
    return tmp_ / "model";
  }();
};

TEST_F(SafetensorsShards, Test11_SingleFileModelLoads) {
  shard("model.safetensors", {"a", "b"});
  auto m = SafetensorsModel::open_dir(model_);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_NE(m.find("b"), nullptr);
  EXPECT_EQ(m.find("c"), nullptr);
  EXPECT_EQ(m.source_of("a"), (model_ / "model.safetensors").string());
}

TEST_F(SafetensorsShards, Test11_ShardedModelLoads) {
  shard("model-00001-of-00002.safetensors", {"a", "b"});
  shard("model-00002-of-00002.safetensors", {"c"});
  index(R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
        R"("c":"model-00002-of-00002.safetensors"})");
  auto m = SafetensorsModel::open_dir(model_);
  EXPECT_EQ(m.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(m.source_of("c"), (model_ / "model-00002-of-00002.safetensors").string());
  std::vector<float> b(2);
  convert_to_f32(*m.find("b"), b.data(), m.source_of("b"));
  EXPECT_EQ(b, (std::vector<float>{1, 1}));
}

TEST_F(SafetensorsShards, Test11_NoModelFiles) {
  expect_error<InputError>([&] { SafetensorsModel::open_dir(model_); },
                           {model_.string(), "no model.safetensors"});
}

TEST_F(SafetensorsShards, Test11_MissingShard) {
  shard("s1.safetensors", {"a"});
  index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  expect_dir_rejected({index_name(), "shard \"s2.safetensors\"", "does not exist"});
}

TEST_F(SafetensorsShards, Test11_TensorInTwoShards) {
  shard("s1.safetensors", {"a", "b"});
  shard("s2.safetensors", {"b", "c"});
  index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  expect_dir_rejected({index_name(), "tensor 'b'", "two shards", "s1.safetensors", "s2.safetensors"});
}

TEST_F(SafetensorsShards, Test11_TensorNotListedInIndex) {
  shard("s1.safetensors", {"a", "extra"});
  index(R"({"a":"s1.safetensors"})");
  expect_dir_rejected({index_name(), "tensor 'extra'", "not listed in the index"});
}

TEST_F(SafetensorsShards, Test11_ListedTensorAbsentFromShard) {
  shard("s1.safetensors", {"a"});
  index(R"({"a":"s1.safetensors","ghost":"s1.safetensors"})");
  expect_dir_rejected({index_name(), "tensor 'ghost'", "does not contain it"});
}

TEST_F(SafetensorsShards, Test11_TensorInOtherShardThanListed) {
  shard("s1.safetensors", {"a"});
  shard("s2.safetensors", {"b"});
  index(R"({"a":"s2.safetensors","b":"s2.safetensors"})");
  // s1 is not listed, so it is never opened: "a" is simply missing from s2.
  expect_dir_rejected({index_name(), "tensor 'a'", "does not contain it"});
  index(R"({"a":"s2.safetensors","b":"s1.safetensors"})");
  expect_dir_rejected({index_name(), "tensor 'a'", "listed in shard \"s2.safetensors\"",
                       "stored in shard \"s1.safetensors\""});
}

TEST_F(SafetensorsShards, Test11_ShardPathWithDotDotIsRejected) {
  // A valid file outside the model directory that the index tries to reach.
  shard("../outside.safetensors", {"a"});
  ASSERT_TRUE(fs::exists(tmp_ / "outside.safetensors"));
  index(R"({"a":"../outside.safetensors"})");
  expect_dir_rejected({index_name(), "tensor 'a'", "\"../outside.safetensors\"", "escapes the model directory"});
  index(R"({"a":"sub/../../outside.safetensors"})");
  expect_dir_rejected({"escapes the model directory"});
  index(R"({"a":"./model.safetensors"})");
  expect_dir_rejected({"escapes the model directory"});
}

TEST_F(SafetensorsShards, Test11_AbsoluteShardPathIsRejected) {
  shard("../outside.safetensors", {"a"});
  const std::string abs = (tmp_ / "outside.safetensors").string();
  index(R"({"a":")" + abs + R"("})");
  expect_dir_rejected({index_name(), "tensor 'a'", abs, "escapes the model directory"});
}

TEST_F(SafetensorsShards, Test11_IndexWithoutWeightMap) {
  write_bytes(model_ / "model.safetensors.index.json", R"({"metadata":{}})");
  expect_dir_rejected({index_name(), "\"weight_map\""});
}

TEST_F(SafetensorsShards, Test11_IndexDuplicateTensor) {
  shard("s1.safetensors", {"a"});
  index(R"({"a":"s1.safetensors","a":"s2.safetensors"})");
  expect_dir_rejected({index_name(), "duplicate key \"a\"", "inside \"weight_map\""});
}

TEST_F(SafetensorsShards, Test11_IndexNotJson) {
  write_bytes(model_ / "model.safetensors.index.json", "{\"weight_map\": {\n  \"a\": }");
  expect_dir_rejected({index_name(), "invalid JSON", "line 2"});
}

// ---- convert_to_f32 -------------------------------------------------------------------------------

TensorView view_of(DType d, const void* data, int64_t n) {
  TensorView t;
  t.name = "t";
  t.dtype = d;
  t.shape = {n};
  t.data = static_cast<const uint8_t*>(data);
  t.nbytes = n * dtype_bits(d) / 8;
  return t;
}

TEST(SafetensorsConvert, F16ExactValues) {
  const uint16_t h[] = {0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0400,
                        0x0001, 0x03FF, 0x8001, 0x7C00, 0xFC00, 0x3555};
  const float want[] = {0.0f, -0.0f, 1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -14),
                        std::ldexp(1.0f, -24), std::ldexp(1023.0f, -24), -std::ldexp(1.0f, -24),
                        INFINITY, -INFINITY, 0.333251953125f};
  std::vector<float> out(std::size(h));
  convert_to_f32(view_of(DType::F16, h, std::size(h)), out.data(), "src");
  for (size_t i = 0; i < std::size(h); ++i) {
    EXPECT_EQ(out[i], want[i]) << std::hex << h[i];
    EXPECT_EQ(std::signbit(out[i]), std::signbit(want[i])) << std::hex << h[i];
  }
}

TEST(SafetensorsConvert, F16NanKeepsSignAndPayload) {
  const uint16_t h[] = {0x7E00, 0xFE00, 0x7C01};
  std::vector<float> out(3);
  convert_to_f32(view_of(DType::F16, h, 3), out.data(), "src");
  uint32_t bits[3];
  std::memcpy(bits, out.data(), sizeof bits);
  EXPECT_EQ(bits[0], 0x7FC00000u);
  EXPECT_EQ(bits[1], 0xFFC00000u);
  EXPECT_EQ(bits[2], 0x7F802000u);
  for (float x : out) EXPECT_TRUE(std::isnan(x));
}

TEST(SafetensorsConvert, F16EveryValueMatchesTheCompiler) {
  std::vector<uint16_t> all(65536);
  std::iota(all.begin(), all.end(), 0);
  std::vector<float> out(all.size());
  convert_to_f32(view_of(DType::F16, all.data(), 65536), out.data(), "src");
  for (uint32_t i = 0; i < 65536; ++i) {
    _Float16 h;
    const uint16_t b = static_cast<uint16_t>(i);
    std::memcpy(&h, &b, 2);
    const float want = static_cast<float>(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(out[i])) << i;
    } else {
      ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0) << i;
    }
  }
}

TEST(SafetensorsConvert, BF16ExactValues) {
  const uint16_t h[] = {0x3F80, 0xC000, 0x0001, 0x8000, 0x7F80, 0xFF80, 0x7F7F, 0x3EAB};
  const float want[] = {1.0f, -2.0f, std::ldexp(1.0f, -133), -0.0f, INFINITY, -INFINITY,
                        3.3895313892515355e38f, 0.333984375f};
  std::vector<float> out(std::size(h));
  convert_to_f32(view_of(DType::BF16, h, std::size(h)), out.data(), "src");
  for (size_t i = 0; i < std::size(h); ++i) {
    EXPECT_EQ(out[i], want[i]) << std::hex << h[i];
    EXPECT_EQ(std::signbit(out[i]), std::signbit(want[i]));
  }
  const uint16_t nan = 0x7FC1;
  float f;
  convert_to_f32(view_of(DType::BF16, &nan, 1), &f, "src");
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  EXPECT_EQ(bits, 0x7FC10000u);
}

TEST(SafetensorsConvert, UnalignedSourceData) {
  alignas(8) uint8_t buf[1 + 2 * 4];
  const float v[2] = {1.5f, -2.25f};
  std::memcpy(buf + 1, v, 8);
  float out[2];
  convert_to_f32(view_of(DType::F32, buf + 1, 2), out, "src");
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.25f);
  const uint16_t hv[2] = {0x3C00, 0x4000};
  std::memcpy(buf + 1, hv, 4);
  convert_to_f32(view_of(DType::F16, buf + 1, 2), out, "src");
  EXPECT_EQ(out[1], 2.0f);
}

TEST(SafetensorsConvert, OtherDtypesAreRejectedNamingTheTensor) {
  const int32_t x[1] = {1};
  float out[1];
  expect_error<InputError>([&] { convert_to_f32(view_of(DType::I32, x, 1), out, "model.safetensors"); },
                           {"model.safetensors", "tensor 't'", "dtype I32"});
}

}  // namespace
}  // namespace rlhf
