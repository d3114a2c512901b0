// GGUF, llama.cpp's single-file format (v2 and v3, little-endian): typed key/value metadata,
// then tensor infos, then aligned tensor data, memory-mapped. Every count, length, offset and
// size is checked against the file before it is used, so a truncated or corrupt file fails with
// one line naming the file, the key or tensor, and the reason. It lives in common because both
// the model loader (hyperparameters, weights) and the tokenizer (vocabulary) read it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mmap.h"
#include "common/tensor.h"

namespace herd {

// A regular file whose first four bytes are the GGUF magic (the format is told by content).
bool is_gguf_file(const std::string& path);

enum class GgufType : uint32_t { u8, i8, u16, i16, u32, i32, f32, boolean, string, array, u64, i64, f64 };
std::string_view gguf_type_name(GgufType t);
// ggml.h's type id of t (F32, F16, BF16 and the GGML block types); an internal error for the others.
uint32_t ggml_type_id(DType t);

// One metadata value. Scalars are decoded; an array keeps its element type, its count and
// where its elements start in the file (the typed getters below decode them).
struct GgufValue {
  GgufType type = GgufType::u8;
  uint64_t u = 0;      // unsigned integers and bool
  int64_t i = 0;       // signed integers
  double f = 0.0;      // f32 and f64
  std::string_view s;  // string
  GgufType elem = GgufType::u8;  // array
  uint64_t count = 0;            // array
  const uint8_t* data = nullptr;  // array: the first element
};

struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;          // outermost first: GGUF's ne[] reversed, so [rows, cols] for a matrix
  uint64_t offset = 0;  // from the start of the data section
  const void* data = nullptr;
};

class GgufFile {
 public:
  // Maps and validates the file. Throws an invalid-input Error naming it on any problem.
  explicit GgufFile(const std::string& path);
  // Validates a buffer the caller keeps alive (the fuzz target); `source` names it in errors.
  GgufFile(const uint8_t* data, size_t size, std::string source);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  static bool has_magic(const uint8_t* data, size_t size);

  const std::string& source() const { return source_; }
  uint32_t version() const { return version_; }
  const GgufValue* find(std::string_view key) const;

  // Typed reads: nullopt when the key is absent; invalid input naming the key when it holds
  // another type. Integers of any width and sign read as int64 (a u64 above INT64_MAX fails).
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // f32 or f64
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<std::vector<std::string_view>> get_strings(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_ints(std::string_view key) const;
  // get_int or an invalid-input Error naming the missing key.
  int64_t require_int(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(std::string_view name) const;
  TensorView view(const GgufTensorInfo& t) const { return TensorView{t.dtype, t.shape, t.data}; }

 private:
  void parse(const uint8_t* data, size_t size);

  std::unique_ptr<MappedFile> file_;  // null for a caller's buffer
  std::string source_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue, std::less<>> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace herd
