// The safetensors reader against a file written by the Python safetensors package, and its
// validation against hand-made corrupt headers.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "common/check.h"
#include "model/safetensors.h"

namespace herd {
namespace {

// save_file({'a': ones(2,3,bf16), 'b': zeros(4), 'c': ones(1,f16)}) by safetensors (PyPI).
TEST(Safetensors, ReadsAFileThePythonPackageWrote) {
  SafetensorsFile f(std::string(HERD_TEST_DATA) + "/small-torch.safetensors");
  ASSERT_EQ(f.header().tensors.size(), 3u);
  for (const auto& e : f.header().tensors) {
    const TensorView v = f.view(e);
    if (e.name == "a") {
      EXPECT_EQ(v.dtype, DType::bf16);
      EXPECT_EQ(v.shape, (Shape{2, 3}));
      for (int i = 0; i < 6; ++i) EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(v.data)[i]), 1.f);
    } else if (e.name == "b") {
      EXPECT_EQ(v.dtype, DType::f32);
      EXPECT_EQ(v.shape, (Shape{4}));
      for (int i = 0; i < 4; ++i) EXPECT_EQ(static_cast<const float*>(v.data)[i], 0.f);
    } else {
      EXPECT_EQ(e.name, "c");
      EXPECT_EQ(v.dtype, DType::f16);
      EXPECT_EQ(f16_to_f32(static_cast<const uint16_t*>(v.data)[0]), 1.f);
    }
  }
}

TEST(Safetensors, WriterOutputReadsBack) {
  const float a[3] = {1.5f, -2.f, 3.25f};
  const uint16_t b[2] = {f32_to_bf16(0.5f), f32_to_bf16(-8.f)};
  const auto path = (std::filesystem::temp_directory_path() / "herd-writer-test.safetensors").string();
  write_safetensors(path, {{"x", {DType::f32, {3}, a}}, {"y", {DType::bf16, {1, 2}, b}}});
  SafetensorsFile f(path);
  EXPECT_EQ(f.header().data_start % 8, 0u);
  for (const auto& e : f.header().tensors) {
    const TensorView v = f.view(e);
    EXPECT_EQ(std::memcmp(v.data, e.name == "x" ? static_cast<const void*>(a) : b, v.nbytes()), 0) << e.name;
  }
  std::filesystem::remove(path);
}

// A file: the 8-byte length, the header text, then `data_bytes` bytes of data.
std::string file_with(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  const uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::string f(8, '\0');
  for (int i = 0; i < 8; ++i) f[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return f + header + std::string(data_bytes, '\0');
}

std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m.safetensors");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("m.safetensors: ", 0), 0u) << "names the file: " << msg;
    return msg;
  }
  ADD_FAILURE() << "accepted: " << bytes.substr(8);
  return "";
}

TEST(Safetensors, RejectsCorruptHeaders) {
  const std::string ok = R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})";
  EXPECT_NO_THROW(parse_safetensors_header(reinterpret_cast<const uint8_t*>(file_with(ok, 16).data()),
                                           file_with(ok, 16).size(), "ok"));
  EXPECT_NE(parse_error("abc").find("truncated"), std::string::npos);
  EXPECT_NE(parse_error(file_with(ok, 16, 1u << 20)).find("truncated"), std::string::npos);
  EXPECT_NE(parse_error(file_with(ok, 16, 1ull << 40)).find("exceeds"), std::string::npos);
  EXPECT_NE(parse_error(file_with("{\"w\": ", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(file_with("[1, 2]", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(parse_error(file_with(ok, 15)).find("ends at byte 16"), std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 16))
                .find("needs 16"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16))
                .find("I64 is not supported"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8))
                .find("non-negative"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8))
                .find("end before"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "F32", "shape": [2]}})", 8)).find("data_offsets"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                  12))
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 8]}})", 8))
                .find("too large"),
            std::string::npos);
}

TEST(Safetensors, RejectsDeeplyNestedHeaders) {
  const std::string deep = "{\"__metadata__\": " + std::string(50000, '[') + std::string(50000, ']') + "}";
  EXPECT_NE(parse_error(file_with(deep, 0)).find("JSON nested deeper than 128 levels"), std::string::npos);
}

TEST(Safetensors, MissingFileNamesThePath) {
  try {
    SafetensorsFile f("/nonexistent/x.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.safetensors: cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace herd
