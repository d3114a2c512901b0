#include "common/gguf-file.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/check.h"

namespace herd {
namespace {

constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;

struct GgmlType {
  uint32_t id;
  const char* name;
  std::optional<DType> dtype;  // nullopt: a type herd does not compute with
};

// ggml.h's type ids. Only the ones herd supports map to a DType; the rest are named so that
// the error says what the file holds.
constexpr GgmlType kGgmlTypes[] = {
    {0, "F32", DType::f32},     {1, "F16", DType::f16},     {2, "Q4_0", DType::q4_0},  {3, "Q4_1", DType::q4_1},
    {6, "Q5_0", {}},            {7, "Q5_1", {}},            {8, "Q8_0", DType::q8_0},  {9, "Q8_1", {}},
    {10, "Q2_K", {}},           {11, "Q3_K", {}},           {12, "Q4_K", DType::q4_k}, {13, "Q5_K", DType::q5_k},
    {14, "Q6_K", DType::q6_k},  {15, "Q8_K", {}},           {16, "IQ2_XXS", {}},       {17, "IQ2_XS", {}},
    {18, "IQ3_XXS", {}},        {19, "IQ1_S", {}},          {20, "IQ4_NL", {}},        {21, "IQ3_S", {}},
    {22, "IQ2_S", {}},          {23, "IQ4_XS", {}},         {24, "I8", {}},            {25, "I16", {}},
    {26, "I32", {}},            {27, "I64", {}},            {28, "F64", {}},           {29, "IQ1_M", {}},
    {30, "BF16", DType::bf16},  {34, "TQ1_0", {}},          {35, "TQ2_0", {}},         {39, "MXFP4", {}},
};

DType dtype_of_ggml(uint32_t id, const std::string& source, const std::string& tensor) {
  for (const GgmlType& t : kGgmlTypes) {
    if (t.id != id) continue;
    HERD_REQUIRE(t.dtype, source, ": tensor \"", tensor, "\" has type ", t.name,
                 ", which herd does not support (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)");
    return *t.dtype;
  }
  fail_input(source, ": tensor \"", tensor, "\" has unknown ggml type id ", id);
}

}  // namespace

uint32_t ggml_type_id(DType t) {
  for (const GgmlType& g : kGgmlTypes)
    if (g.dtype == t) return g.id;
  throw Error(ErrorKind::internal, str_cat(dtype_name(t), " is not a ggml type"));
}

namespace {

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean: return 1;
    case GgufType::u16:
    case GgufType::i16: return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32: return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64: return 8;
    case GgufType::string:
    case GgufType::array: return 0;
  }
  return 0;
}

// Reads little-endian values from the buffer; every read is checked against its end.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& source) : data_(data), size_(size), source_(source) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  void need(uint64_t n, std::string_view what) const {
    HERD_REQUIRE(n <= left(), source_, ": truncated: ", what, " at byte ", pos_, " needs ", n, " bytes but ", left(),
                 " remain");
  }
  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view string(std::string_view what) {
    const uint64_t len = read<uint64_t>(what);
    need(len, what);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  void skip(uint64_t n, std::string_view what) {
    need(n, what);
    pos_ += size_t(n);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& source_;
};

GgufType read_type(Cursor& c, const std::string& source, const std::string& key) {
  const uint32_t t = c.read<uint32_t>(key);
  HERD_REQUIRE(t <= uint32_t(GgufType::f64), source, ": key \"", key, "\" has unknown value type ", t);
  return GgufType(t);
}

// Moves past `count` array elements of type `elem`, checking lengths as it goes.
void skip_elements(Cursor& c, GgufType elem, uint64_t count, const std::string& source, const std::string& key,
                   int depth) {
  if (elem == GgufType::string) {
    // Each string takes at least its 8-byte length: a count beyond that cannot be in the file.
    HERD_REQUIRE(count <= c.left() / 8, source, ": key \"", key, "\": array of ", count, " strings is longer than the file");
    for (uint64_t i = 0; i < count; ++i) c.string(key);
  } else if (elem == GgufType::array) {
    HERD_REQUIRE(depth < kMaxArrayDepth, source, ": key \"", key, "\": arrays nested deeper than ", kMaxArrayDepth);
    HERD_REQUIRE(count <= c.left() / 12, source, ": key \"", key, "\": array of ", count, " arrays is longer than the file");
    for (uint64_t i = 0; i < count; ++i) {
      const GgufType inner = read_type(c, source, key);
      const uint64_t n = c.read<uint64_t>(key);
      skip_elements(c, inner, n, source, key, depth + 1);
    }
  } else {
    const size_t size = scalar_size(elem);
    HERD_REQUIRE(count <= c.left() / size, source, ": key \"", key, "\": array of ", count, " ", gguf_type_name(elem),
                 " is longer than the file");
    c.skip(count * size, key);
  }
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& source, const std::string& key) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::u8: v.u = c.read<uint8_t>(key); break;
    case GgufType::u16: v.u = c.read<uint16_t>(key); break;
    case GgufType::u32: v.u = c.read<uint32_t>(key); break;
    case GgufType::u64: v.u = c.read<uint64_t>(key); break;
    case GgufType::i8: v.i = c.read<int8_t>(key); break;
    case GgufType::i16: v.i = c.read<int16_t>(key); break;
    case GgufType::i32: v.i = c.read<int32_t>(key); break;
    case GgufType::i64: v.i = c.read<int64_t>(key); break;
    case GgufType::f32: v.f = c.read<float>(key); break;
    case GgufType::f64: v.f = c.read<double>(key); break;
    case GgufType::boolean: {
      const uint8_t b = c.read<uint8_t>(key);
      HERD_REQUIRE(b <= 1, source, ": key \"", key, "\": bool byte is ", int(b), ", not 0 or 1");
      v.u = b;
      break;
    }
    case GgufType::string: v.s = c.string(key); break;
    case GgufType::array:
      v.elem = read_type(c, source, key);
      v.count = c.read<uint64_t>(key);
      v.data = c.here();
      skip_elements(c, v.elem, v.count, source, key, 1);
      break;
  }
  return v;
}

bool is_unsigned(GgufType t) { return t == GgufType::u8 || t == GgufType::u16 || t == GgufType::u32 || t == GgufType::u64; }
bool is_signed(GgufType t) { return t == GgufType::i8 || t == GgufType::i16 || t == GgufType::i32 || t == GgufType::i64; }

std::optional<int64_t> as_int(const GgufValue& v) {
  if (is_signed(v.type)) return v.i;
  if (is_unsigned(v.type) && v.u <= uint64_t(std::numeric_limits<int64_t>::max())) return int64_t(v.u);
  return std::nullopt;
}

int64_t int_at(const uint8_t* p, GgufType t) {
  switch (t) {
    case GgufType::u8: return p[0];
    case GgufType::i8: return int8_t(p[0]);
    case GgufType::u16: { uint16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufType::i16: { int16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufType::u32: { uint32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufType::i32: { int32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufType::u64: { uint64_t x; std::memcpy(&x, p, 8); return int64_t(x); }
    case GgufType::i64: { int64_t x; std::memcpy(&x, p, 8); return x; }
    default: return 0;
  }
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::string_view names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32", "float32",
                                               "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return uint32_t(t) <= uint32_t(GgufType::f64) ? names[uint32_t(t)] : "?";
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

bool GgufFile::has_magic(const uint8_t* data, size_t size) {
  return size >= 4 && std::memcmp(data, "GGUF", 4) == 0;
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)), source_(path) {
  parse(file_->data(), file_->size());
}

GgufFile::GgufFile(const uint8_t* data, size_t size, std::string source) : source_(std::move(source)) {
  parse(data, size);
}

GgufFile::~GgufFile() = default;

void GgufFile::parse(const uint8_t* data, size_t size) {
  Cursor c(data, size, source_);
  HERD_REQUIRE(has_magic(data, size), source_, ": not a GGUF file (no GGUF magic)");
  c.skip(4, "magic");
  version_ = c.read<uint32_t>("version");
  HERD_REQUIRE(version_ != 0x02000000 && version_ != 0x03000000, source_,
               ": a big-endian GGUF file; only little-endian files are supported");
  HERD_REQUIRE(version_ == 2 || version_ == 3, source_, ": GGUF version ", version_,
               " is not supported (2 and 3 are); re-convert the model with a current llama.cpp");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_values = c.read<uint64_t>("metadata count");
  // A key/value takes at least 12 bytes and a tensor info at least 28: larger counts lie.
  HERD_REQUIRE(n_values <= c.left() / 12, source_, ": metadata count ", n_values, " is larger than the file can hold");
  HERD_REQUIRE(n_tensors <= c.left() / 28, source_, ": tensor count ", n_tensors, " is larger than the file can hold");

  for (uint64_t k = 0; k < n_values; ++k) {
    const std::string key(c.string(str_cat("metadata key ", k)));
    const GgufType type = read_type(c, source_, key);
    GgufValue v = read_value(c, type, source_, key);
    HERD_REQUIRE(values_.emplace(key, v).second, source_, ": key \"", key, "\" appears twice");
  }

  uint64_t alignment = 32;
  if (const GgufValue* a = find("general.alignment")) {
    HERD_REQUIRE(is_unsigned(a->type) && a->u > 0 && (a->u & (a->u - 1)) == 0 && a->u <= (1u << 20), source_,
                 ": general.alignment must be a power of two, is ", a->u);
    alignment = a->u;
  }

  std::vector<uint64_t> sizes;
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    info.name = std::string(c.string(str_cat("tensor name ", t)));
    const std::string& name = info.name;
    const uint32_t n_dims = c.read<uint32_t>(name);
    HERD_REQUIRE(n_dims >= 1 && n_dims <= kMaxDims, source_, ": tensor \"", name, "\" has ", n_dims,
                 " dimensions (1 to 4 allowed)");
    std::vector<int64_t> ne(n_dims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.read<uint64_t>(name);
      // Divided, not multiplied: the product of two hostile dimensions can wrap around.
      HERD_REQUIRE(n >= 1 && n <= (uint64_t(1) << 40) && n <= (uint64_t(1) << 48) / uint64_t(numel), source_,
                   ": tensor \"", name, "\" has an impossible dimension ", n);
      ne[d] = int64_t(n);
      numel *= int64_t(n);
    }
    info.dtype = dtype_of_ggml(c.read<uint32_t>(name), source_, name);
    const DTypeBlock blk = dtype_block(info.dtype);
    HERD_REQUIRE(ne[0] % blk.elems == 0, source_, ": tensor \"", name, "\" has rows of ", ne[0], " elements, not whole ",
                 dtype_name(info.dtype), " blocks of ", blk.elems);
    info.offset = c.read<uint64_t>(name);
    HERD_REQUIRE(info.offset % alignment == 0, source_, ": tensor \"", name, "\" offset ", info.offset,
                 " is not a multiple of the alignment ", alignment);
    info.shape.assign(ne.rbegin(), ne.rend());
    sizes.push_back(dtype_nbytes(info.dtype, numel));
    HERD_REQUIRE(tensor_index_.emplace(name, tensors_.size()).second, source_, ": tensor \"", name, "\" appears twice");
    tensors_.push_back(std::move(info));
  }

  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  HERD_REQUIRE(n_tensors == 0 || data_start <= size, source_, ": truncated: tensor data would start at byte ",
               data_start, " of a ", size, "-byte file");
  const uint64_t data_size = n_tensors == 0 ? 0 : size - data_start;
  std::vector<std::pair<uint64_t, size_t>> spans;  // (offset, index), to find overlaps
  for (size_t t = 0; t < tensors_.size(); ++t) {
    GgufTensorInfo& info = tensors_[t];
    HERD_REQUIRE(info.offset <= data_size && sizes[t] <= data_size - info.offset, source_, ": tensor \"", info.name,
                 "\" (", dtype_name(info.dtype), " ", shape_str(info.shape), ", ", sizes[t], " bytes at data offset ",
                 info.offset, ") runs past the end of the file; it is truncated or corrupt");
    info.data = data + data_start + info.offset;
    spans.emplace_back(info.offset, t);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t k = 1; k < spans.size(); ++k) {
    const auto& [prev_off, prev] = spans[k - 1];
    HERD_REQUIRE(prev_off + sizes[prev] <= spans[k].first, source_, ": tensors \"", tensors_[prev].name, "\" and \"",
                 tensors_[spans[k].second].name, "\" overlap");
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  const auto i = as_int(*v);
  HERD_REQUIRE(i, source_, ": key \"", key, "\" should be an integer, is ", gguf_type_name(v->type));
  return i;
}

int64_t GgufFile::require_int(std::string_view key) const {
  const auto i = get_int(key);
  HERD_REQUIRE(i, source_, ": missing key \"", key, "\"");
  return *i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  HERD_REQUIRE(v->type == GgufType::f32 || v->type == GgufType::f64, source_, ": key \"", key,
               "\" should be a float, is ", gguf_type_name(v->type));
  return v->f;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  HERD_REQUIRE(v->type == GgufType::boolean, source_, ": key \"", key, "\" should be a bool, is ",
               gguf_type_name(v->type));
  return v->u != 0;
}

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  HERD_REQUIRE(v->type == GgufType::string, source_, ": key \"", key, "\" should be a string, is ",
               gguf_type_name(v->type));
  return v->s;
}

std::optional<std::vector<std::string_view>> GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  HERD_REQUIRE(v->type == GgufType::array && v->elem == GgufType::string, source_, ": key \"", key,
               "\" should be an array of strings");
  std::vector<std::string_view> out;
  out.reserve(size_t(v->count));
  const uint8_t* p = v->data;
  for (uint64_t k = 0; k < v->count; ++k) {  // lengths were checked when the file was parsed
    uint64_t len;
    std::memcpy(&len, p, 8);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), size_t(len));
    p += 8 + len;
  }
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  HERD_REQUIRE(v->type == GgufType::array && (is_signed(v->elem) || is_unsigned(v->elem)), source_, ": key \"", key,
               "\" should be an array of integers");
  std::vector<int64_t> out(size_t(v->count));
  const size_t size = scalar_size(v->elem);
  for (uint64_t k = 0; k < v->count; ++k) out[size_t(k)] = int_at(v->data + k * size, v->elem);
  return out;
}

}  // namespace herd
