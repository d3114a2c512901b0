#include "model/safetensors.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/json-limits.h"

namespace herd {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own limit (100 MB)

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

SafetensorsEntry parse_entry(const std::string& name, const json& e, const std::string& source) {
  auto bad = [&](const std::string& why) { fail_input(source, ": tensor \"", name, "\": ", why); };
  if (!e.is_object()) bad("header entry is not an object");
  SafetensorsEntry out;
  out.name = name;

  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) bad("missing \"dtype\"");
  auto dtype = dtype_from_safetensors(dt->get<std::string>());
  if (!dtype) bad("dtype " + dt->get<std::string>() + " is not supported (herd reads F32, F16, BF16, I32 and F8_E4M3)");
  out.dtype = *dtype;

  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) bad("missing \"shape\" list");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      bad("shape " + sh->dump() + " must hold non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > (uint64_t(1) << 62) / v) bad("shape " + sh->dump() + " is too large");
    numel *= v;
    out.shape.push_back(int64_t(v));
  }

  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("\"data_offsets\" must be two non-negative integers");
  out.begin = (*off)[0].get<uint64_t>();
  out.end = (*off)[1].get<uint64_t>();
  if (out.end < out.begin) bad("data_offsets end before they begin");
  const uint64_t expect = numel * dtype_size(out.dtype);
  if (out.end - out.begin != expect)
    bad(str_cat("holds ", out.end - out.begin, " bytes but shape ", shape_str(out.shape), " of ",
                dtype_name(out.dtype), " needs ", expect));
  return out;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& source) {
  HERD_REQUIRE(size >= 8, source, ": truncated: ", size, " bytes, too short for a safetensors header");
  const uint64_t n = read_u64_le(data);
  HERD_REQUIRE(n <= kMaxHeader, source, ": header length ", n, " exceeds the 100 MB limit (corrupt file?)");
  HERD_REQUIRE(n <= size - 8, source, ": truncated: header of ", n, " bytes but the file has ", size - 8,
               " after the length");
  const char* text = reinterpret_cast<const char*>(data + 8);
  const std::optional<json> parsed = parse_json_limited(std::string_view(text, size_t(n)), source);
  HERD_REQUIRE(parsed, source, ": header is not valid JSON");
  const json& j = *parsed;
  HERD_REQUIRE(j.is_object(), source, ": header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    SafetensorsEntry e = parse_entry(it.key(), it.value(), source);
    HERD_REQUIRE(e.end <= data_size, source, ": truncated or corrupt: tensor \"", e.name, "\" ends at byte ",
                 e.end, " of a data section of ", data_size);
    h.tensors.push_back(std::move(e));
  }

  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : h.tensors) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    HERD_REQUIRE(by_offset[i]->begin >= by_offset[i - 1]->end, source, ": tensors \"", by_offset[i - 1]->name,
                 "\" and \"", by_offset[i]->name, "\" overlap");
  }
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(path), header_(parse_safetensors_header(file_.data(), file_.size(), path)) {}

TensorView SafetensorsFile::view(const SafetensorsEntry& e) const {
  return TensorView{e.dtype, e.shape, file_.data() + header_.data_start + e.begin};
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const uint64_t n = t.view.nbytes();
    header[t.name] = {{"dtype", dtype_name(t.view.dtype)}, {"shape", t.view.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  HERD_REQUIRE(f.good(), path, ": cannot create");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(text.data(), std::streamsize(text.size()));
  for (const auto& t : tensors) f.write(static_cast<const char*>(t.view.data), std::streamsize(t.view.nbytes()));
  HERD_REQUIRE(f.good(), path, ": write failed");
}

}  // namespace herd
